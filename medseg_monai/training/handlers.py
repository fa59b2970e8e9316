"""Ignite handlers of a training run: metrics CSV, curves, checkpoints, time budget, a learning rate over
the budget's elapsed share, backbone unfreeze."""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from medseg_monai.errors import ConfigError
from medseg_monai.models.checkpoint import save_checkpoint
from medseg_monai.utils import atomic_write_text

__all__ = ["RunLogger", "TimeBudgetSchedule", "BackboneUnfreezer", "KEY_METRIC", "epoch_line", "training_loss"]

logger = logging.getLogger(__name__)

KEY_METRIC = "val_mean_dice"
IOU_METRIC = "val_mean_iou"


def training_loss(output: dict) -> float:
    """The loss of one training step from the trainer's (batched, not decollated) output."""
    return float(output["loss"].detach())


def epoch_line(row: dict[str, Any], steps: int, epochs: int, budget_s: float | None = None) -> str:
    """One line of progress per epoch (the log's and, without a progress bar, the console's), e.g.
    ``epoch 3/50: loss 0.4123, val mean Dice 0.8120; 40 steps in 12.3 s (3.25 steps/s, data wait 2 %), elapsed
    1.2 min``; with a time budget the elapsed time is given against it (``epochs`` is then an upper bound)."""
    validation = f", val mean Dice {row[KEY_METRIC]:.4f}" if KEY_METRIC in row else ""
    train_s = row["epoch_time_s"] - row.get("val_time_s", 0.0)
    rate = steps / train_s if train_s > 0 else float("nan")
    wait = 100 * row["data_wait_s"] / train_s if train_s > 0 else 0.0
    epoch = f"epoch {row['epoch']}" if budget_s is not None else f"epoch {row['epoch']}/{epochs}"
    elapsed = f"{row['elapsed_s'] / 60:.1f}" + (f" of {budget_s / 60:.0f}" if budget_s is not None else "")
    return (
        f"{epoch}: loss {row['train_loss']:.4f}{validation}; {steps} steps in {train_s:.1f} s "
        f"({rate:.2f} steps/s, data wait {wait:.0f} %), elapsed {elapsed} min"
    )


class RunLogger:
    """Per-epoch bookkeeping of a run folder.

    After every epoch it saves ``checkpoints/last.pt`` (keeping the one it replaces as ``last.prev.pt``)
    and, when the validation Dice improves, the same payload as ``checkpoints/best.pt``, then rewrites
    ``metrics.csv`` (loss, learning rate, time, the share of it spent waiting for the next batch,
    validation mean Dice/IoU and Dice per class) and ``curves.png`` from the history. It also stops
    training once the wall-clock budget is spent, validating the final epoch if the schedule would have
    skipped it. ``elapsed_s`` is the budget already spent by the completed epochs of a resumed run.
    """

    def __init__(
        self,
        run_dir: Path,
        evaluator: Engine,
        class_names: Sequence[str],
        state_objects: dict[str, Any],
        config_dict: dict,
        time_budget_min: float | None = None,
        history: list[dict] | None = None,
        best_metric: float = -1.0,
        best_epoch: int = 0,
        elapsed_s: float | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.evaluator = evaluator
        self.class_names = list(class_names)
        self.state_objects = state_objects
        self.config_dict = config_dict
        self.time_budget_s = None if time_budget_min is None else 60.0 * time_budget_min
        self.history: list[dict] = list(history or [])
        self.best_metric = best_metric
        self.best_epoch = best_epoch
        self._losses: list[float] = []
        self._epoch_start = 0.0
        self._batch_start = 0.0
        self._data_wait_s = 0.0
        self._lr = 0.0
        self._run_start = time.monotonic()
        if elapsed_s is None:
            elapsed_s = float(self.history[-1]["elapsed_s"]) if self.history else 0.0
        self._elapsed_before = float(elapsed_s)

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        trainer.add_event_handler(Events.GET_BATCH_STARTED, self._batch_started)
        trainer.add_event_handler(Events.GET_BATCH_COMPLETED, self._batch_completed)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_before + time.monotonic() - self._run_start

    def _epoch_started(self, engine: Engine) -> None:
        self._losses = []
        self._data_wait_s = 0.0
        self._epoch_start = time.monotonic()
        optimizer = self.state_objects["optimizer"]
        self._lr = float(optimizer.param_groups[0]["lr"])

    def _batch_started(self, engine: Engine) -> None:
        self._batch_start = time.perf_counter()

    def _batch_completed(self, engine: Engine) -> None:
        self._data_wait_s += time.perf_counter() - self._batch_start

    def _iteration_completed(self, engine: Engine) -> None:
        self._losses.append(training_loss(engine.state.output))

    def _epoch_completed(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        budget_spent = self.time_budget_s is not None and self.elapsed_s >= self.time_budget_s
        last_epoch = epoch >= engine.state.max_epochs or budget_spent
        if last_epoch and self.evaluator.state.epoch != epoch:
            self.evaluator.run(epoch)
        epoch_s = time.monotonic() - self._epoch_start
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": sum(self._losses) / max(len(self._losses), 1),
            "lr": self._lr,
            "epoch_time_s": epoch_s,
            "elapsed_s": self.elapsed_s,
            "data_wait_s": self._data_wait_s,
        }
        improved = False
        if self.evaluator.state.epoch == epoch:
            row["val_time_s"] = float(self.evaluator.state.times.get("COMPLETED") or 0.0)
            row.update(self._validation_metrics())
            improved = row[KEY_METRIC] > self.best_metric
        logger.info(epoch_line(row, len(self._losses), engine.state.max_epochs, self.time_budget_s))
        if improved:
            self.best_metric, self.best_epoch = row[KEY_METRIC], epoch
            logger.info("epoch %d: new best %s %.4f", epoch, KEY_METRIC, self.best_metric)
        self.history.append(row)
        # last.pt first: a crash before best.pt is written is repaired on resume from last.pt (the same payload)
        self._save(("last.pt", "best.pt") if improved else ("last.pt",), engine, row["elapsed_s"])
        self.write_outputs()
        if budget_spent and epoch < engine.state.max_epochs:
            logger.info("time budget of %.1f min spent after epoch %d; stopping", self.time_budget_s / 60, epoch)
            engine.terminate()

    def _validation_metrics(self) -> dict[str, float]:
        metrics = self.evaluator.state.metrics
        row = {KEY_METRIC: float(metrics[KEY_METRIC]), IOU_METRIC: float(metrics.get(IOU_METRIC, math.nan))}
        details = self.evaluator.state.metric_details.get(KEY_METRIC)
        if details is not None:
            per_class = torch.nanmean(torch.as_tensor(details, dtype=torch.float32), dim=0)
            for name, value in zip(self.class_names[1:], per_class.tolist()):
                row[f"val_dice_{name}"] = value
        return row

    def _save(self, names: Sequence[str], engine: Engine, elapsed_s: float) -> None:
        payload = {key: obj.state_dict() for key, obj in self.state_objects.items()}
        payload.update(
            trainer={"epoch": engine.state.epoch, "iteration": engine.state.iteration, "elapsed_s": elapsed_s},
            config=self.config_dict,
            best_metric=self.best_metric,
            best_epoch=self.best_epoch,
            history=list(self.history),
        )
        for name in names:
            save_checkpoint(self.run_dir / "checkpoints" / name, payload, keep_previous=name == "last.pt")

    def write_outputs(self) -> None:
        """Rewrite ``metrics.csv`` and ``curves.png`` from the history (a resumed run repairs them first)."""
        if self.history:
            self._write_csv()
            self._write_curves()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.history:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.run_dir / "metrics.csv", buffer.getvalue())

    def _write_curves(self) -> None:
        from medseg_monai.reporting import plot_training_curves

        plot_training_curves(self.history, self.run_dir / "curves.png")


class TimeBudgetSchedule:
    """Learning rate as a function of the elapsed share of the wall-clock budget, not of an epoch count.

    ``lr = base * f(min(1, elapsed / budget))`` with ``f`` the cosine (down to 1 % of the base) or
    poly (power 0.9) curve, set before every iteration: when the machine slows down mid-run the
    schedule still ends as the budget does, and the :class:`RunLogger` stops training after the
    epoch that spends it. Under DDP the share is rank 0's, broadcast at the start of each epoch, so
    every process steps with the same rate. ``base_lrs`` may be rescaled (:class:`BackboneUnfreezer`).
    """

    def __init__(
        self,
        optimizer,
        kind: str,
        run_logger: RunLogger | None,
        budget_s: float,
        device: torch.device | None = None,
        distributed: bool = False,
    ):
        if kind not in ("cosine", "poly", "none"):
            raise ConfigError(f"scheduler must be cosine, poly or none, got {kind!r}")
        if budget_s <= 0:
            raise ConfigError(f"time budget must be positive, got {budget_s} s")
        self.optimizer = optimizer
        self.kind = kind
        self.run_logger = run_logger
        self.budget_s = budget_s
        self.device = device
        self.distributed = distributed
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self._share = 0.0

    def attach(self, trainer: Engine) -> None:
        event = Events.EPOCH_STARTED if self.distributed else Events.ITERATION_STARTED
        trainer.add_event_handler(event, self._update)

    def factor(self, share: float) -> float:
        """Multiplier of the base learning rate at ``share`` of the budget."""
        share = min(max(share, 0.0), 1.0)
        if self.kind == "cosine":
            return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * share))
        if self.kind == "poly":
            return (1.0 - share) ** 0.9
        return 1.0

    def _update(self, engine: Engine) -> None:
        share = self.run_logger.elapsed_s / self.budget_s if self.run_logger is not None else 0.0
        if self.distributed:
            import torch.distributed as dist

            value = torch.tensor([share], dtype=torch.float64, device=self.device)
            dist.broadcast(value, src=0)
            share = float(value.item())
        self._share = share
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.factor(share)

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]


class BackboneUnfreezer:
    """Two-stage fine-tuning: keep ``parameters`` frozen for ``frozen_epochs``, then train everything
    with the learning rate (and the scheduler's base rates) scaled by ``lr_factor``."""

    def __init__(
        self, parameters: Sequence[torch.nn.Parameter], optimizer, scheduler, frozen_epochs: int, lr_factor: float
    ):
        self.parameters = list(parameters)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.frozen_epochs = frozen_epochs
        self.lr_factor = lr_factor

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.STARTED, self._started)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _set_trainable(self, trainable: bool) -> None:
        for param in self.parameters:
            param.requires_grad_(trainable)

    def _started(self, engine: Engine) -> None:
        self._set_trainable(engine.state.epoch >= self.frozen_epochs)

    def _epoch_completed(self, engine: Engine) -> None:
        if engine.state.epoch != self.frozen_epochs:
            return
        self._set_trainable(True)
        for group in self.optimizer.param_groups:
            group["lr"] *= self.lr_factor
        if self.scheduler is not None and hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [lr * self.lr_factor for lr in self.scheduler.base_lrs]
        logger.info("epoch %d: backbone unfrozen, learning rate x%.3g", engine.state.epoch, self.lr_factor)
