"""How the optimiser steps: learning-rate schedules, linear warm-up, gradient clipping and early stopping.

- Epoch schedules (``cosine``, ``poly``, ``step``, ``none``) are one closed-form ``LambdaLR`` of the
  epoch index, stepped by MONAI's ``LrScheduleHandler`` after every epoch; ``plateau`` is torch's
  ``ReduceLROnPlateau`` stepped on the validation mean Dice after every validation.
- :class:`LinearWarmup` scales the rate of each optimiser step during the first ``warmup_epochs`` and
  puts the unscaled rate back after the step, so the schedules never see the warm-up.
- :class:`GradientClipper` clips the global gradient norm right before the optimiser steps (after the
  last of ``accumulate_steps`` backward passes; gradients unscaled first under CUDA mixed precision).
- :func:`early_stopping` is ignite's ``EarlyStopping`` on the validation mean Dice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.handlers import LrScheduleHandler

from medseg_monai.config import TrainConfig
from medseg_monai.errors import ConfigError

__all__ = [
    "GradientClipper",
    "LinearWarmup",
    "build_scheduler",
    "early_stopping",
    "epoch_factor",
    "schedule_handlers",
    "schedules_by_time",
    "stopped_early",
]

logger = logging.getLogger(__name__)

COSINE_FLOOR = 0.01  # cosine ends at 1 % of the initial rate


def epoch_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the initial learning rate after ``epoch`` completed epochs, for the epoch schedules."""
    epochs, kind = cfg.epochs, cfg.scheduler
    if kind == "cosine":
        return lambda epoch: (
            COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))
        )
    if kind == "poly":
        return lambda epoch: max(1.0 - min(epoch, epochs) / epochs, 0.0) ** 0.9
    if kind == "step":
        return lambda epoch: cfg.lr_gamma ** (epoch // cfg.step_size)
    if kind in ("none", "plateau"):
        return lambda epoch: 1.0
    raise ConfigError(f"unknown scheduler {kind!r}")


def schedules_by_time(cfg: TrainConfig) -> bool:
    """Whether the learning rate follows the time budget's elapsed share (``TimeBudgetSchedule``), not epochs."""
    return cfg.schedule_by_time and cfg.time_budget_min is not None


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    """The torch scheduler of ``cfg.scheduler`` (``None`` for ``none``)."""
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=cfg.lr_gamma,
            patience=cfg.plateau_patience,
            threshold=1e-4,
            threshold_mode="abs",
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, epoch_factor(cfg))


def schedule_handlers(scheduler, metric: str) -> tuple[LrScheduleHandler | None, _PlateauStep | None]:
    """``(trainer handler, evaluator handler)`` that step ``scheduler``, one of them or neither ``None``: epoch
    schedules after every training epoch, ``ReduceLROnPlateau`` on the evaluator's ``metric`` after every validation."""
    if scheduler is None:
        return None, None
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        handler = LrScheduleHandler(
            lr_scheduler=scheduler, print_lr=False, step_transform=lambda engine: engine.state.metrics[metric]
        )
        return None, _PlateauStep(handler)
    return LrScheduleHandler(lr_scheduler=scheduler, print_lr=False), None


class _PlateauStep:
    """Steps ``ReduceLROnPlateau`` once per validation epoch (the final epoch may be validated twice) and logs drops."""

    def __init__(self, handler: LrScheduleHandler):
        self.handler = handler
        self._last_epoch = -1

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, evaluator: Engine) -> None:
        if evaluator.state.epoch == self._last_epoch:
            return
        self._last_epoch = evaluator.state.epoch
        scheduler = self.handler.lr_scheduler
        before = [float(group["lr"]) for group in scheduler.optimizer.param_groups]
        self.handler(evaluator)
        after = float(scheduler.optimizer.param_groups[0]["lr"])
        if after < before[0]:
            logger.info(
                "epoch %d: validation plateau, learning rate %.3g -> %.3g", evaluator.state.epoch, before[0], after
            )


class LinearWarmup:
    """Scale the learning rate of optimiser step ``s`` (from 1) by ``s / warmup_steps`` while ``s <= warmup_steps``.

    The rate is scaled at ``ITERATION_STARTED`` and restored at ``ITERATION_COMPLETED``: schedulers,
    checkpoints and the metrics CSV keep the unscaled rate. With gradient accumulation the warm-up
    counts optimiser steps, not batches.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_epochs: float,
        iterations_per_epoch: int,
        accumulate_steps: int = 1,
    ):
        self.optimizer = optimizer
        self.accumulate_steps = max(int(accumulate_steps), 1)
        self.warmup_steps = max(int(round(warmup_epochs * iterations_per_epoch / self.accumulate_steps)), 1)
        self._saved: list[float] | None = None

    def factor(self, iteration: int) -> float:
        """Multiplier for trainer iteration ``iteration`` (from 1)."""
        step = (iteration - 1) // self.accumulate_steps + 1
        return min(step / self.warmup_steps, 1.0)

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.ITERATION_STARTED, self._scale)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._restore)

    def _scale(self, engine: Engine) -> None:
        factor = self.factor(engine.state.iteration)
        if factor >= 1.0:
            return
        self._saved = [float(group["lr"]) for group in self.optimizer.param_groups]
        for group, lr in zip(self.optimizer.param_groups, self._saved):
            group["lr"] = lr * factor

    def _restore(self, engine: Engine) -> None:
        if self._saved is None:
            return
        for group, lr in zip(self.optimizer.param_groups, self._saved):
            group["lr"] = lr
        self._saved = None


class GradientClipper:
    """Clip the global L2 norm of ``parameters``' gradients to ``max_norm`` before each optimiser step.

    Runs on MONAI's ``BACKWARD_COMPLETED`` only for the batches after which the trainer steps (every
    ``accumulation_steps``-th and the last of an epoch); under CUDA mixed precision the gradients are
    unscaled first (the grad scaler then skips its own unscale). ``last_norm`` is the norm before clipping.
    """

    def __init__(self, parameters, max_norm: float):
        self.parameters = [p for p in parameters]
        self.max_norm = float(max_norm)
        self.last_norm: float | None = None

    def attach(self, trainer: SupervisedTrainer) -> None:
        trainer.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    @staticmethod
    def steps_now(engine: SupervisedTrainer) -> bool:
        """Whether the trainer's optimiser steps after this backward pass (MONAI's accumulation rule)."""
        acc = getattr(engine, "accumulation_steps", 1)
        if acc <= 1:
            return True
        length = engine.state.epoch_length
        local = (engine.state.iteration - 1) % length if length is not None else engine.state.iteration - 1
        return (local + 1) % acc == 0 or (length is not None and local + 1 == length)

    def __call__(self, engine: SupervisedTrainer) -> None:
        if not self.steps_now(engine):
            return
        if engine.amp and engine.scaler is not None:
            engine.scaler.unscale_(engine.optimizer)
        norm = torch.nn.utils.clip_grad_norm_([p for p in self.parameters if p.grad is not None], self.max_norm)
        self.last_norm = float(norm)


def early_stopping(cfg: TrainConfig, trainer: Engine, metric: str) -> EarlyStopping | None:
    """Ignite's ``EarlyStopping`` on the evaluator's ``metric`` (its ``attach`` takes the evaluator), or ``None``."""
    if cfg.early_stop_patience is None:
        return None
    return _LoggedEarlyStopping(
        patience=cfg.early_stop_patience,
        score_function=lambda engine: float(engine.state.metrics[metric]),
        trainer=trainer,
        threshold=cfg.early_stop_min_delta,
    )


class _LoggedEarlyStopping(EarlyStopping):
    """``EarlyStopping`` that counts each validation epoch once (the final epoch may be validated twice)
    and says in the log why training ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logger = logging.getLogger(f"{__name__}.early_stopping")  # ignite's own logger prints with its own handler
        self._last_epoch = -1

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch == self._last_epoch:
            return
        self._last_epoch = engine.state.epoch
        super().__call__(engine)
        if self.counter >= self.patience:
            logger.info(
                "early stop after epoch %d: no improvement of the validation mean Dice for %d validations",
                self.trainer.state.epoch,
                self.patience,
            )

    @property
    def stopped(self) -> bool:
        return self.counter >= self.patience


def stopped_early(state: dict | None, patience: int | None) -> bool:
    """Whether a saved ``EarlyStopping`` state had already stopped its run."""
    return patience is not None and state is not None and int(state.get("counter", 0)) >= patience
