"""The common recipe flow: split -> fit the schedule to the budget -> train -> predict -> evaluate -> report.

A run folder ``OUT/<network>/`` receives what :func:`medseg_monai.api.train` writes
(``config.json``, ``splits.json``, ``metrics.csv``, ``curves.png``, ``checkpoints/``) plus
``datalist.json`` (the split), ``predictions/`` (validation masks in the source format),
``evaluation/metrics_per_case.csv`` and ``metrics_summary.json`` (Dice, IoU, precision, recall,
accuracy, HD95, ASD per case and class), ``best_worst.png``, ``recipe.log`` and ``summary.json``.

The steps live beside this module: :mod:`~medseg_monai.recipes.preparation` (cases and config),
:mod:`~medseg_monai.recipes.schedule` (epochs for the budget), :mod:`~medseg_monai.recipes.scoring`
(predict and score), :mod:`~medseg_monai.recipes.rescoring` (``--score-only``) and
:mod:`~medseg_monai.recipes.summary` (``summary.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.recipes.catalog import get_recipe
from medseg_monai.recipes.preparation import choose_cases, prepare_config, write_datalist
from medseg_monai.recipes.rescoring import rescore_run
from medseg_monai.recipes.schedule import plan_training
from medseg_monai.recipes.scoring import predict_and_score
from medseg_monai.recipes.spec import Recipe, resolve_data_root
from medseg_monai.recipes.summary import canonical_command, runtime_versions, write_summary
from medseg_monai.utils import log_to_file

if TYPE_CHECKING:
    from medseg_monai.api import TrainResult

__all__ = ["run_recipe"]

logger = logging.getLogger(__name__)


def run_recipe(
    name: str | Recipe,
    network: str = "unet",
    out: str | Path | None = None,
    time_budget_min: float = 30.0,
    smoke: bool = False,
    data_root: str | Path | None = None,
    seed: int = 0,
    *,
    pretrained: str | None = None,
    epochs: int | None = None,
    checkpoint: str = "last",
    overrides: Mapping[str, Any] | None = None,
    score_only: bool = False,
) -> dict:
    """Train, predict and evaluate one recipe into ``out/<network>/``; return its summary.

    Args:
        name: a registered recipe name (see ``RECIPES``) or a :class:`Recipe`.
        network: one of the recipe's networks, or ``all`` (each in turn; the result is then
            ``{"recipe": name, "runs": {network: summary}}``).
        out: parent folder of the run folders (default ``runs/<name>``).
        time_budget_min: wall-clock training budget in minutes (schedule probe included).
        smoke: a couple of minutes on a few cases, to check the wiring (numbers mean nothing).
        data_root: folder holding the datasets; default ``$MEDSEG_DATA_DIR`` or ``../shared/data``.
        seed: seed of the split, the weights and the sampling.
        pretrained: DeepLabV3 only: local backbone weights; enables the two-stage schedule (frozen
            backbone for the first fifth of the epochs, then all layers at a tenth of the rate).
        epochs: fixed number of epochs instead of fitting them to the budget (which still stops the run).
        checkpoint: ``last`` (default: the end of the annealed schedule, not selected on the
            validation cases it is scored on) or ``best`` (best validation Dice during training).
        overrides: dotted config overrides applied last, e.g. ``{"train.learning_rate": 1e-3}``.
        score_only: keep the trained run in ``out/<network>/`` and only predict and score its validation
            cases again, with the recipe's current inference settings (and ``infer.*`` overrides).

    Raises:
        FileNotFoundError: the data root or the dataset folder is missing (the message says how to fix it).
        ValueError: unknown recipe or network, or an invalid override.
    """
    recipe = get_recipe(name)
    if time_budget_min <= 0:
        raise ConfigError(f"time_budget_min must be positive, got {time_budget_min}")
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if network != "all":
        recipe.config(network)  # unknown networks fail before any work
    root = resolve_data_root(data_root, recipe.dataset)
    out = Path(out) if out else Path("runs") / recipe.name
    kwargs = dict(
        time_budget_min=time_budget_min,
        smoke=smoke,
        data_root=data_root,
        seed=seed,
        pretrained=pretrained,
        epochs=epochs,
        checkpoint=checkpoint,
        overrides=overrides,
        score_only=score_only,
    )
    if network == "all":
        takes_weights = {each for each in recipe.networks if recipe.config(each).model.name == "deeplabv3"}
        if pretrained and takes_weights:
            logger.info("--pretrained applies to deeplabv3 only")
        runs = {}
        for each in recipe.networks:
            each_kwargs = dict(kwargs, pretrained=pretrained if each in takes_weights else None)
            runs[each] = _run_one(recipe, each, out, root, **each_kwargs)
        return {"recipe": recipe.name, "runs": runs}
    return _run_one(recipe, network, out, root, **kwargs)


@dataclasses.dataclass(frozen=True)
class _Trained:
    """One trained network: its cases, the config it trained with, the result, the seconds and the schedule."""

    train_items: list[dict]
    val_items: list[dict]
    config: RunConfig
    result: TrainResult
    seconds: float
    timings: dict[str, Any]

    def summary_fields(self) -> dict[str, Any]:
        """What the summary says about the training (after its kind, budget and seed)."""
        config, result = self.config, self.result
        return {
            "cases": {"training": len(self.train_items), "validation": len(self.val_items)},
            "epochs_planned": config.train.epochs,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_mean_dice_during_training": result.best_metric,
            "last_epoch": result.history[-1] if result.history else {},
            "train_seconds": round(self.seconds, 1),
            "schedule": self.timings,
            "pretrained": config.model.pretrained,
            "freeze_backbone_epochs": config.train.freeze_backbone_epochs,
        }


def _train_network(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    dataset_dir: Path,
    *,
    time_budget_min: float,
    smoke: bool,
    seed: int,
    pretrained: str | None,
    epochs: int | None,
    overrides: Mapping[str, Any] | None,
) -> _Trained:
    """Split the cases (``datalist.json``), plan the schedule and train ``network`` into ``run_dir``."""
    from medseg_monai.api import train

    train_items, val_items = choose_cases(recipe, dataset_dir, seed, smoke)
    datalist = write_datalist(run_dir / "datalist.json", train_items, val_items)
    config = prepare_config(recipe, network, smoke, dataset_dir, datalist, seed, pretrained, overrides)
    logger.info(
        "%s/%s: %d training, %d validation cases -> %s", recipe.name, network, len(train_items), len(val_items), run_dir
    )
    start = time.perf_counter()
    config, timings = plan_training(
        config,
        run_dir,
        time_budget_min=time_budget_min,
        n_train=len(train_items),
        smoke=smoke,
        epochs=epochs,
        pretrained=pretrained,
    )
    result = train(config, run_dir)
    return _Trained(train_items, val_items, config, result, time.perf_counter() - start, timings)


def _run_one(
    recipe: Recipe,
    network: str,
    out: Path,
    root: Path,
    *,
    time_budget_min: float,
    smoke: bool,
    data_root,
    seed: int,
    pretrained: str | None,
    epochs: int | None,
    checkpoint: str,
    overrides: Mapping[str, Any] | None,
    score_only: bool = False,
) -> dict:
    """Train one network of the recipe into ``out/<network>``, predict and score its validation cases."""
    run_dir = out / network
    if score_only:
        return rescore_run(recipe, network, run_dir, root, smoke=smoke, checkpoint=checkpoint, overrides=overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").unlink(missing_ok=True)  # a failed rerun must not leave an old result behind
    with log_to_file(run_dir / "recipe.log"):
        dataset_dir = root / recipe.dataset
        trained = _train_network(
            recipe,
            network,
            run_dir,
            dataset_dir,
            time_budget_min=time_budget_min,
            smoke=smoke,
            seed=seed,
            pretrained=pretrained,
            epochs=epochs,
            overrides=overrides,
        )
        summary = predict_and_score(recipe, network, run_dir, dataset_dir, trained.val_items, checkpoint)
        command = canonical_command(
            recipe.name,
            network,
            out,
            time_budget_min,
            smoke,
            seed,
            data_root,
            pretrained,
            epochs,
            checkpoint,
            overrides,
        )
        summary.update(
            kind="smoke" if smoke else ("full" if time_budget_min >= 30 else "trial"),
            time_budget_min=time_budget_min,
            seed=seed,
            **trained.summary_fields(),
            command=command,
            versions=runtime_versions(),
        )
        write_summary(run_dir / "summary.json", summary)
        headline = summary["headline"]
        logger.info(
            "%s/%s: %s %.4f (target %s) after %d epochs, %.0f s",
            recipe.name,
            network,
            headline["name"],
            headline["value"],
            headline["target"],
            trained.result.epochs_run,
            trained.seconds,
        )
        return summary
