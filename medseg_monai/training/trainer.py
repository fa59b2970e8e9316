"""Training: MONAI ``SupervisedTrainer`` + ``SupervisedEvaluator`` built from one :class:`RunConfig`.

A run folder receives ``config.json`` (the resolved config), ``splits.json``, ``metrics.csv``,
``curves.png`` and ``checkpoints/{best,last,last.prev}.pt``. ``resume=True`` continues from ``last.pt`` (or
``last.prev.pt`` when ``last.pt`` is unusable) with every state an uninterrupted run would have had, random
states included: see :mod:`medseg_monai.training.resume`.

:func:`train` runs named stages, each building one record of :mod:`medseg_monai.training.parts` from the ones
before: :func:`start_run` (folder, resumed checkpoint, seed, cases), the data stage (:mod:`.loaders`), the
network and optimiser (:mod:`.network_setup`), the engines (:mod:`.engines`), the handlers, attached from one
ordered table (:mod:`.handler_table`), and :func:`run_training` (resume, fit, result).

Launched by ``torchrun`` with ``WORLD_SIZE > 1`` (or with ``train.distributed``), every process trains
a ``DistributedDataParallel`` replica on its ``DistributedSampler`` share of the training cases
(``gloo`` on CPU, ``nccl`` on CUDA, one GPU per ``LOCAL_RANK``; see :mod:`.distributed`). Validation is split
across the processes (MONAI gathers the metrics); rank 0 alone writes the run folder, and checkpoints hold the
unwrapped network's weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.engines import SupervisedTrainer

from medseg_monai.config import RunConfig, TrainConfig
from medseg_monai.data.datalist import discover_pairs, load_datalist
from medseg_monai.data.properties import check_pairs, resolve_data_config
from medseg_monai.data.splits import split_pairs
from medseg_monai.errors import ConfigError
from medseg_monai.keys import IMAGE, LABEL
from medseg_monai.training.distributed import (
    DistributedContext,
    close_distributed,
    from_main_process,
    setup_distributed,
)
from medseg_monai.training.engines import build_engines
from medseg_monai.training.handler_table import attach_handlers
from medseg_monai.training.handlers import RunLogger
from medseg_monai.training.loaders import build_training_data
from medseg_monai.training.network_setup import build_network_parts
from medseg_monai.training.parts import RunHandlers, TrainingData, TrainingSetup
from medseg_monai.training.resume import open_for_resume, restore_states
from medseg_monai.training.schedules import stopped_early
from medseg_monai.utils import atomic_write_text, log_to_file, set_seed

__all__ = ["TRAIN_LOG_NAME", "TrainResult", "make_splits", "train"]

#: the run folder's log: every INFO line of the run (appended to by a resumed run), written by rank 0
TRAIN_LOG_NAME = "train.log"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Where a finished run put its outputs, and how well it did."""

    run_dir: Path
    config: RunConfig
    best_metric: float
    best_epoch: int
    epochs_run: int
    history: list[dict]

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def metrics_csv(self) -> Path:
        return self.run_dir / "metrics.csv"


def make_splits(config: RunConfig) -> tuple[list[dict], list[dict]]:
    """Training and validation cases: from a datalist JSON, an explicit validation set, or a seeded split."""
    data_cfg = config.data
    if data_cfg.datalist:
        train_items = load_datalist(data_cfg.datalist, key="training")
        try:
            val_items = load_datalist(data_cfg.datalist, key="validation")
        except (KeyError, ValueError):
            val_items = []
        if val_items:
            return train_items, val_items
        return split_pairs(train_items, data_cfg.val_fraction, data_cfg.seed)
    if not data_cfg.data_dir:
        raise ConfigError("data.data_dir (or data.datalist) must name the training data")
    pairs = discover_pairs(data_cfg.data_dir)
    if data_cfg.val_dir:
        return pairs, discover_pairs(data_cfg.val_dir)
    return split_pairs(pairs, data_cfg.val_fraction, data_cfg.seed)


def _save_splits(run_dir: Path, train_items: Sequence[dict], val_items: Sequence[dict]) -> None:
    """Write ``splits.json``: the name, image and label of every training and validation case."""

    def names(items: Sequence[dict]) -> list[dict]:
        def image(value: object) -> str | list[str]:  # a case of several channel files keeps its list
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)

        return [
            {"name": item.get("name", Path(str(item[IMAGE])).name), IMAGE: image(item[IMAGE]), LABEL: str(item[LABEL])}
            for item in items
        ]

    atomic_write_text(
        run_dir / "splits.json", json.dumps({"training": names(train_items), "validation": names(val_items)}, indent=2)
    )


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False) -> TrainResult:
    """Train a network as described by ``config`` into ``run_dir``.

    Args:
        config: run configuration; ``None`` data fields are resolved from the training data.
        run_dir: output folder (created). With ``resume=True`` it must hold ``checkpoints/last.pt``. The
            run's log lines go into ``run_dir/train.log`` as well.
        resume: continue from the last completed epoch (network, optimiser, scheduler, history, best metric,
            time budget spent, random states); ``config.train.epochs`` may extend the run.

    Under ``torchrun`` (see the module docstring) every process calls this with the same arguments
    and gets the same result back.

    Returns:
        A :class:`TrainResult` with the best validation mean Dice (foreground classes) and its epoch.
    """
    run_dir = Path(run_dir)
    context, device = setup_distributed(config)
    try:
        if not context.is_main:
            return _train(config, run_dir, resume, context, device)
        run_dir.mkdir(parents=True, exist_ok=True)
        with log_to_file(run_dir / TRAIN_LOG_NAME, append=resume):
            return _train(config, run_dir, resume, context, device)
    finally:
        close_distributed(context)


def _train(
    config: RunConfig, run_dir: Path, resume: bool, context: DistributedContext, device: torch.device
) -> TrainResult:
    """The stages of a run, in order: set-up, data, network and optimiser, engines, handlers, then the run."""
    setup = start_run(config, run_dir, resume, context, device)
    data = build_training_data(setup)
    parts = build_network_parts(setup, data)
    engines = build_engines(setup, data, parts)
    _log_effective_batch(setup, data)
    handlers = attach_handlers(setup, data, parts, engines)
    return run_training(setup, engines.trainer, handlers)


def start_run(
    config: RunConfig, run_dir: Path, resume: bool, context: DistributedContext, device: torch.device
) -> TrainingSetup:
    """The run folder, the resumed checkpoint, the seeded random state, the cases and the config they resolve."""
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if resume:
        checkpoint = open_for_resume(run_dir, context.is_main)
        saved = RunConfig.from_dict(checkpoint["config"])
        config = dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=config.train.epochs))
    set_seed(config.train.seed)

    train_items, val_items = make_splits(config)
    if not val_items:
        raise ConfigError("no validation cases: set data.val_fraction > 0 or data.val_dir")
    check_pairs(list(train_items) + list(val_items))
    config = dataclasses.replace(config, data=resolve_data_config(config.data, train_items))
    if context.is_main:
        config.save(run_dir / "config.json")
        _save_splits(run_dir, train_items, val_items)
        logger.info(
            "%d training and %d validation cases; classes %s", len(train_items), len(val_items), config.data.label_names
        )
    log_progress = logger.isEnabledFor(logging.INFO)  # `medseg -q`: no per-epoch lines, no progress bar
    return TrainingSetup(config, run_dir, context, device, checkpoint, train_items, val_items, log_progress)


def _log_effective_batch(setup: TrainingSetup, data: TrainingData) -> None:
    """Log (rank 0) how many patches each optimiser step sees, and the steps of an epoch."""
    if not setup.context.is_main:
        return
    data_cfg, train_cfg, world_size = setup.config.data, setup.config.train, setup.context.world_size
    patches = train_cfg.batch_size * data_cfg.samples_per_image
    logger.info(
        "effective batch: %d patches per optimiser step (batch %d x %d patches x %d accumulated x %d processes); "
        "%d steps per epoch",
        patches * train_cfg.accumulate_steps * world_size,
        train_cfg.batch_size,
        data_cfg.samples_per_image,
        train_cfg.accumulate_steps,
        world_size,
        data.steps_per_epoch,
    )


def run_training(setup: TrainingSetup, trainer: SupervisedTrainer, handlers: RunHandlers) -> TrainResult:
    """Resume where the checkpoint left off, train the epochs still due, and return the outcome on every process."""
    checkpoint, train_cfg = setup.checkpoint, setup.config.train
    if checkpoint is not None:
        _resume(setup, trainer, handlers)
    try:
        if (
            trainer.state.epoch < train_cfg.epochs
            and not _budget_spent(checkpoint, train_cfg)
            and not _stopped_early(checkpoint, train_cfg)
        ):
            trainer.run()
    finally:
        if handlers.tensorboard is not None:
            handlers.tensorboard.close()
    return _train_result(setup, handlers.run_logger)


def _resume(setup: TrainingSetup, trainer: SupervisedTrainer, handlers: RunHandlers) -> None:
    """Put the trainer after the checkpoint's epoch, restore every saved state and repair the run's outputs."""
    checkpoint = setup.checkpoint
    done = int(checkpoint["trainer"]["epoch"])
    trainer.state.epoch = done
    trainer.state.iteration = int(checkpoint["trainer"]["iteration"])
    logger.info("resuming %s after epoch %d", setup.run_dir, done)
    restore_states(checkpoint, handlers.state_objects)  # last: building the loaders and the network drew random numbers
    if handlers.run_logger is not None:
        handlers.run_logger.write_outputs()  # a crash may have come between last.pt and metrics.csv


def _train_result(setup: TrainingSetup, run_logger: RunLogger | None) -> TrainResult:
    """Rank 0's best metric, its epoch and the history, as the result of every process."""
    outcome = (run_logger.best_metric, run_logger.best_epoch, run_logger.history) if run_logger is not None else None
    best_metric, best_epoch, history = from_main_process(outcome, setup.context)
    return TrainResult(
        run_dir=setup.run_dir,
        config=setup.config,
        best_metric=best_metric,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
    )


def _budget_spent(checkpoint: dict | None, train_cfg: TrainConfig) -> bool:
    """Whether the resumed run had already stopped on its time budget (no further epoch is due)."""
    if checkpoint is None or train_cfg.time_budget_min is None:
        return False
    elapsed = checkpoint["trainer"].get("elapsed_s")
    spent = elapsed is not None and float(elapsed) >= 60.0 * train_cfg.time_budget_min
    if spent:
        logger.info(
            "time budget of %.1f min was spent by epoch %d; nothing left to train",
            train_cfg.time_budget_min,
            int(checkpoint["trainer"]["epoch"]),
        )
    return spent


def _stopped_early(checkpoint: dict | None, train_cfg: TrainConfig) -> bool:
    """Whether the resumed run had already stopped early (no further epoch is due)."""
    stopped = checkpoint is not None and stopped_early(checkpoint.get("early_stopping"), train_cfg.early_stop_patience)
    if stopped:
        logger.info("the run stopped early after epoch %d; nothing left to train", int(checkpoint["trainer"]["epoch"]))
    return stopped
