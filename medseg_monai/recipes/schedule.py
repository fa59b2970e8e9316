"""How long a recipe's network trains: fixed epochs, or a schedule fitted to the wall-clock budget.

A fitted schedule is timed by a short probe run (:func:`fit_schedule`); :func:`plan_training` picks
between the two and adds the two-stage schedule of pretrained DeepLabV3 backbones.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from medseg_monai.config import RunConfig

__all__ = ["BUDGET_SAFETY", "PROBE_STEPS", "TARGET_VALIDATIONS", "VALIDATION_SHARE", "fit_schedule", "plan_training"]

logger = logging.getLogger(__name__)

#: steps per probe epoch; how many validations a fitted schedule aims at, and their largest share of the budget
PROBE_STEPS = 5
TARGET_VALIDATIONS = 20
VALIDATION_SHARE = 0.1
#: share of the remaining budget the fitted epochs may fill (the rest absorbs timing noise)
BUDGET_SAFETY = 0.95


def _steps_per_epoch(config: RunConfig, n_train: int) -> int:
    return config.train.iterations_per_epoch or math.ceil(n_train / config.train.batch_size)


def _probe(config: RunConfig, run_dir: Path, probe_steps: int) -> tuple[list[dict], float]:
    """Train three short epochs (validation on the third) into ``run_dir/schedule_probe``, removed afterwards;
    return the history and the seconds the probe took."""
    from medseg_monai.api import train

    probe_train = dataclasses.replace(
        config.train,
        epochs=3,
        iterations_per_epoch=probe_steps,
        val_interval=3,
        time_budget_min=None,
        freeze_backbone_epochs=0,
    )
    probe_dir = run_dir / "schedule_probe"
    start = time.perf_counter()
    try:
        history = train(dataclasses.replace(config, train=probe_train), probe_dir).history
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    return history, time.perf_counter() - start


def fit_schedule(config: RunConfig, run_dir: Path, budget_min: float, n_train: int) -> tuple[RunConfig, dict]:
    """Choose ``epochs`` and ``val_interval`` so the cosine schedule ends when the budget does.

    A probe trains three short epochs (``PROBE_STEPS`` steps each, validation on the third) into
    ``run_dir/schedule_probe`` (removed afterwards) to time a training step and a validation pass on
    this machine. The rest of the budget is filled with whole epochs with up to ``TARGET_VALIDATIONS``
    validations among them (fewer when they would take more than ``VALIDATION_SHARE`` of the budget);
    ``train.epochs`` stays the upper bound of this plan. Five probe steps can misjudge a long run's
    epochs and a machine can slow down mid-run, so the returned config sets ``train.schedule_by_time``:
    the learning rate follows the elapsed share of the budget, and training runs until the budget is
    spent (up to ``train.epochs``), whatever the epochs cost.

    Returns:
        The config to train with (``epochs``, ``val_interval``, ``time_budget_min`` set) and the timings.
    """
    steps = _steps_per_epoch(config, n_train)
    probe_steps = min(steps, PROBE_STEPS)
    history, probe_s = _probe(config, run_dir, probe_steps)
    step_s = min(history[0]["epoch_time_s"], history[1]["epoch_time_s"]) / probe_steps
    val_s = max(history[2]["epoch_time_s"] - history[1]["epoch_time_s"], 0.0)
    remaining_s = max(budget_min * 60.0 - probe_s, 0.0)
    usable_s = BUDGET_SAFETY * remaining_s
    train_epoch_s = max(steps * step_s, 1e-6)
    validations = max(1, min(TARGET_VALIDATIONS, int(VALIDATION_SHARE * usable_s / max(val_s, 1e-6))))
    val_interval = max(1, math.ceil(usable_s / train_epoch_s / validations))
    epochs = int(usable_s // (train_epoch_s + val_s / val_interval))
    epochs = max(2, min(epochs, config.train.epochs))
    val_interval = min(val_interval, epochs)
    timings = {
        "probe_s": round(probe_s, 1),
        "step_s": round(step_s, 3),
        "validation_s": round(val_s, 1),
        "steps_per_epoch": steps,
        "epochs": epochs,
        "val_interval": val_interval,
        "train_budget_s": round(remaining_s, 1),
    }
    logger.info("schedule fitted to the budget: %s", timings)
    train_cfg = dataclasses.replace(
        config.train, val_interval=val_interval, time_budget_min=remaining_s / 60.0, schedule_by_time=True
    )
    return dataclasses.replace(config, train=train_cfg), timings


def plan_training(
    config: RunConfig,
    run_dir: Path,
    *,
    time_budget_min: float,
    n_train: int,
    smoke: bool,
    epochs: int | None,
    pretrained: str | None,
) -> tuple[RunConfig, dict[str, Any]]:
    """The config to train with and the schedule's timings (empty unless fitted to the budget).

    With ``epochs`` or ``smoke`` the run keeps its epochs (or takes ``epochs``) and the budget only stops it;
    otherwise :func:`fit_schedule` fits them to the budget. Pretrained weights freeze the backbone for the
    first fifth of the epochs unless the config says otherwise.
    """
    timings: dict[str, Any] = {}
    if epochs is not None or smoke:
        train_cfg = dataclasses.replace(config.train, time_budget_min=time_budget_min)
        if epochs is not None:
            train_cfg = dataclasses.replace(train_cfg, epochs=epochs, val_interval=min(train_cfg.val_interval, epochs))
        config = dataclasses.replace(config, train=train_cfg)
    else:
        config, timings = fit_schedule(config, run_dir, time_budget_min, n_train)
    if pretrained and config.train.freeze_backbone_epochs == 0:
        freeze = max(1, config.train.epochs // 5)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=freeze))
    return config, timings
