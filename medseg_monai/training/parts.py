"""The frozen records that the stages of a training run hand each other.

:func:`~medseg_monai.training.trainer.train` runs the stages in this order, each building one record from the
ones before it: :class:`TrainingSetup` (settings and cases), :class:`TrainingData` (the training loader),
:class:`NetworkParts` (network, optimiser, loss), :class:`TrainingEngines` (trainer and evaluator) and
:class:`RunHandlers` (the handlers, attached in their table's order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Engine

if TYPE_CHECKING:
    from monai.data import CacheDataset
    from monai.engines import SupervisedEvaluator, SupervisedTrainer
    from torch.utils.data import DataLoader

    from medseg_monai.config import RunConfig
    from medseg_monai.training.distributed import DistributedContext
    from medseg_monai.training.handlers import RunLogger
    from medseg_monai.training.tensorboard import TensorBoardLogger

__all__ = ["HandlerRow", "NetworkParts", "RunHandlers", "TrainingData", "TrainingEngines", "TrainingSetup"]

#: one row of the handler table: (name, the engine it attaches to, a handler with ``attach(engine)``)
HandlerRow = tuple[str, Engine, Any]


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """The run's resolved settings, folder, place in the job, resumed checkpoint and cases."""

    config: RunConfig
    run_dir: Path
    context: DistributedContext
    device: torch.device
    checkpoint: dict | None  # what a resumed run continues from; None for a fresh run
    train_items: Sequence[dict]
    val_items: Sequence[dict]
    log_progress: bool  # the log shows INFO lines: the per-epoch loss line and the progress bar (not `medseg -q`)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The training dataset and loader, the loader's generator, and whether the network is compiled."""

    dataset: CacheDataset
    loader: DataLoader
    generator: torch.Generator  # sampler order and augmentations; saved with the checkpoint's random states
    compiled: bool  # decided with the loader: a compiled network sees one batch shape, so a short last batch is dropped
    steps_per_epoch: int


@dataclasses.dataclass(frozen=True)
class NetworkParts:
    """The network, what the trainer and evaluator run of it, its optimiser, schedule, loss and precision."""

    network: torch.nn.Module  # the plain network: checkpoints save its weights
    model: torch.nn.Module  # what the trainer runs: the network wrapped for DDP, compilation and precision
    validation_network: torch.nn.Module  # what the evaluator runs: the network wrapped for precision
    optimizer: torch.optim.Optimizer
    scheduler: Any | None  # a torch scheduler stepped per epoch or on plateaus; None without one or by time
    loss: torch.nn.Module
    amp: bool  # MONAI's engines autocast (with a grad scaler), CUDA only
    dtype: torch.dtype | None

    @property
    def amp_kwargs(self) -> dict | None:
        """The engines' ``amp_kwargs``: the autocast dtype under AMP."""
        return {"dtype": self.dtype} if self.amp else None


@dataclasses.dataclass(frozen=True)
class TrainingEngines:
    """The run's two ignite engines."""

    trainer: SupervisedTrainer
    evaluator: SupervisedEvaluator


@dataclasses.dataclass(frozen=True)
class RunHandlers:
    """The handler table as attached, and the objects a checkpoint saves by name."""

    table: tuple[HandlerRow, ...]
    state_objects: dict[str, Any]

    def named(self, name: str) -> Any | None:
        """The handler of the table's row ``name``; ``None`` when this run has none."""
        return next((handler for row_name, _engine, handler in self.table if row_name == name), None)

    @property
    def run_logger(self) -> RunLogger | None:
        """Rank 0's bookkeeping of the run folder (``None`` on the other processes)."""
        return self.named("run logger")

    @property
    def tensorboard(self) -> TensorBoardLogger | None:
        """The TensorBoard writer of rank 0, when the run writes events."""
        return self.named("tensorboard")
