"""The handler stage of a training run: every handler of the trainer and the evaluator, in one ordered table.

:func:`handler_table` builds the rows in the order they are attached; :func:`attach_handlers` attaches them and
returns them with the objects a checkpoint saves (:func:`checkpoint_entries`).
"""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from monai.handlers import ValidationHandler

from medseg_monai.errors import ConfigError
from medseg_monai.networks import backbone_parameters
from medseg_monai.training.distributed import DistributedEpochEnd
from medseg_monai.training.handlers import KEY_METRIC, BackboneUnfreezer, RunLogger, TimeBudgetSchedule, training_loss
from medseg_monai.training.parts import (
    HandlerRow,
    NetworkParts,
    RunHandlers,
    TrainingData,
    TrainingEngines,
    TrainingSetup,
)
from medseg_monai.training.resume import RngState, ScalerState
from medseg_monai.training.schedules import (
    GradientClipper,
    LinearWarmup,
    early_stopping,
    schedule_handlers,
    schedules_by_time,
)
from medseg_monai.training.tensorboard import TensorBoardLogger
from medseg_monai.utils import progress_bars

__all__ = ["attach_handlers", "checkpoint_entries", "handler_table"]


def attach_handlers(
    setup: TrainingSetup, data: TrainingData, parts: NetworkParts, engines: TrainingEngines
) -> RunHandlers:
    """Build the run's handlers, attach them in the order of :func:`handler_table`, and return them."""
    state_objects = checkpoint_entries(setup, data, parts, engines)
    run_logger = _run_logger(setup, engines.evaluator, state_objects)
    time_schedule = _time_schedule(setup, parts, run_logger)
    if time_schedule is not None:
        state_objects["time_schedule"] = time_schedule
    table = handler_table(setup, data, parts, engines, state_objects, run_logger)
    for _name, engine, handler in table:
        handler.attach(engine)
    return RunHandlers(tuple(table), state_objects)


def checkpoint_entries(
    setup: TrainingSetup, data: TrainingData, parts: NetworkParts, engines: TrainingEngines
) -> dict[str, Any]:
    """The objects a checkpoint saves, by entry name (``time_schedule`` is added once it is built)."""
    context, trainer = setup.context, engines.trainer
    rng = RngState(
        [data.dataset, engines.evaluator.data_loader.dataset], data.generator, context.rank, context.world_size
    )
    entries = {"network": parts.network, "optimizer": parts.optimizer, "scaler": ScalerState(trainer), "rng": rng}
    if parts.scheduler is not None:
        entries["scheduler"] = parts.scheduler
    stopper = early_stopping(setup.config.train, trainer, KEY_METRIC)
    if stopper is not None:
        entries["early_stopping"] = stopper
    return entries


def handler_table(
    setup: TrainingSetup,
    data: TrainingData,
    parts: NetworkParts,
    engines: TrainingEngines,
    state_objects: dict[str, Any],
    run_logger: RunLogger | None,
) -> list[HandlerRow]:
    """Every handler of this run as ``(name, engine, handler)``, in attachment order (rows not used are left out)."""
    cfg, trainer, evaluator = setup.config.train, engines.trainer, engines.evaluator
    epoch_schedule, plateau_schedule = schedule_handlers(parts.scheduler, KEY_METRIC)
    time_schedule = state_objects.get("time_schedule")
    bars = progress_bars()  # else the epoch loss line is the progress (no carriage returns in a log file)
    # Ignite calls the handlers of one event in the order they were attached, and the run's results depend on it:
    # an epoch is validated before the run logger records it; the backbone is unfrozen, and the DDP processes agree
    # on stopping and gather their random states, before the run logger saves the epoch's checkpoint (so that a
    # checkpoint of the last frozen epoch resumes unfrozen); TensorBoard logs the learning rate the warm-up scaled.
    rows: list[HandlerRow] = [
        ("epoch schedule", trainer, epoch_schedule),
        ("validation", trainer, ValidationHandler(validator=evaluator, interval=cfg.val_interval, epoch_level=True)),
        ("grad scaler state", trainer, state_objects["scaler"]),
        ("plateau schedule", evaluator, plateau_schedule),
        ("early stopping", evaluator, state_objects.get("early_stopping")),
        ("gradient clipping", trainer, _gradient_clipper(setup, parts)),
        ("time-budget schedule", trainer, time_schedule),
        ("backbone unfreeze", trainer, _backbone_unfreezer(setup, parts, time_schedule)),
        ("distributed epoch end", trainer, _distributed_epoch_end(setup, evaluator, run_logger, state_objects["rng"])),
        ("run logger", trainer, run_logger),
        ("warm-up", trainer, _warmup(setup, data, parts)),
        ("tensorboard", trainer, _tensorboard(setup, evaluator, parts)),
        ("progress bar", trainer, _ProgressBar() if setup.context.is_main and setup.log_progress and bars else None),
    ]
    return [row for row in rows if row[2] is not None]


def _run_logger(setup: TrainingSetup, evaluator: Engine, state_objects: dict[str, Any]) -> RunLogger | None:
    """Rank 0's bookkeeping of the run folder, continuing a resumed run's history; ``None`` on other ranks."""
    if not setup.context.is_main:
        return None
    config, checkpoint = setup.config, setup.checkpoint or {}
    # under DDP the time budget is decided by DistributedEpochEnd so that all processes agree
    budget = None if setup.context.enabled else config.train.time_budget_min
    return RunLogger(
        setup.run_dir,
        evaluator,
        config.data.label_names,
        state_objects,
        config.to_dict(),
        budget,
        list(checkpoint.get("history", [])),
        float(checkpoint.get("best_metric", -1.0)),
        int(checkpoint.get("best_epoch", 0)),
        checkpoint.get("trainer", {}).get("elapsed_s"),
    )


def _time_schedule(
    setup: TrainingSetup, parts: NetworkParts, run_logger: RunLogger | None
) -> TimeBudgetSchedule | None:
    """The learning rate over the time budget's elapsed share, when the run is scheduled by time."""
    cfg = setup.config.train
    if not schedules_by_time(cfg):
        return None
    budget_s = 60.0 * cfg.time_budget_min
    return TimeBudgetSchedule(parts.optimizer, cfg.scheduler, run_logger, budget_s, setup.device, setup.context.enabled)


def _gradient_clipper(setup: TrainingSetup, parts: NetworkParts) -> GradientClipper | None:
    """Clipping of the gradient norm to ``train.grad_clip``, when set."""
    max_norm = setup.config.train.grad_clip
    return None if max_norm is None else GradientClipper(parts.network.parameters(), max_norm)


def _backbone_unfreezer(
    setup: TrainingSetup, parts: NetworkParts, time_schedule: TimeBudgetSchedule | None
) -> BackboneUnfreezer | None:
    """The backbone frozen for ``train.freeze_backbone_epochs``, then fine-tuned, when set."""
    config, cfg = setup.config, setup.config.train
    if not cfg.freeze_backbone_epochs > 0:
        return None
    frozen = backbone_parameters(parts.network)
    if not frozen:
        raise ConfigError(f"train.freeze_backbone_epochs is set but network {config.model.name!r} has no backbone")
    schedule = time_schedule or parts.scheduler
    return BackboneUnfreezer(frozen, parts.optimizer, schedule, cfg.freeze_backbone_epochs, cfg.finetune_lr_factor)


def _distributed_epoch_end(
    setup: TrainingSetup, evaluator: Engine, run_logger: RunLogger | None, rng: RngState
) -> DistributedEpochEnd | None:
    """The DDP processes' shared decisions at each epoch end, under DDP."""
    if not setup.context.enabled:
        return None
    return DistributedEpochEnd(evaluator, run_logger, setup.config.train.time_budget_min, setup.device, rng)


def _warmup(setup: TrainingSetup, data: TrainingData, parts: NetworkParts) -> LinearWarmup | None:
    """The linear learning-rate warm-up of ``train.warmup_epochs``, when set."""
    cfg = setup.config.train
    if cfg.warmup_epochs > 0:
        return LinearWarmup(parts.optimizer, cfg.warmup_epochs, data.steps_per_epoch, cfg.accumulate_steps)
    return None


def _tensorboard(setup: TrainingSetup, evaluator: Engine, parts: NetworkParts) -> TensorBoardLogger | None:
    """Rank 0's TensorBoard events, when ``train.tensorboard`` is set."""
    cfg = setup.config.train
    if not (setup.context.is_main and cfg.tensorboard):
        return None
    return TensorBoardLogger(
        setup.run_dir, setup.config.data.label_names, cfg.tensorboard_images_every, evaluator, parts.optimizer
    )


class _ProgressBar:
    """Ignite's progress bar of each training epoch, showing the step's loss."""

    def attach(self, trainer: Engine) -> None:
        from ignite.handlers import ProgressBar  # tqdm is imported only by runs that show the bar

        ProgressBar(persist=False, desc="train").attach(trainer, output_transform=_loss_of)


def _loss_of(output: dict) -> dict[str, float]:
    return {"loss": training_loss(output)}
