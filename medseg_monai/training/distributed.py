"""Distributed training under ``torchrun``: this process's place in the job and its process group, each
process's validation shard, the epoch end the processes agree on, and rank 0's outcome shared with all.

Launched with ``WORLD_SIZE > 1`` (or with ``train.distributed``), every process trains a
``DistributedDataParallel`` replica (``gloo`` on CPU, ``nccl`` on CUDA, one GPU per ``LOCAL_RANK``).
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.data import partition_dataset

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.utils import resolve_device

if TYPE_CHECKING:
    from medseg_monai.training.handlers import RunLogger
    from medseg_monai.training.resume import RngState

__all__ = [
    "DistributedContext",
    "DistributedEpochEnd",
    "close_distributed",
    "from_main_process",
    "setup_distributed",
    "validation_share",
]

#: the run log names the trainer for these lines, as it did before the distributed set-up had its own module
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly single-process) training job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(config: RunConfig) -> tuple[DistributedContext, torch.device]:
    """Join the ``torchrun`` process group when launched with ``WORLD_SIZE > 1`` or ``train.distributed``.

    Returns the context and this process's device (``cuda:LOCAL_RANK`` on GPUs). The process group is
    created here unless the caller already did (then ``owns_group`` is False and it is left open).

    Raises:
        ValueError: ``train.distributed`` without a ``torchrun`` launch, or ``nccl`` without CUDA.
    """
    cfg = config.train
    world_env = os.environ.get("WORLD_SIZE")
    if not cfg.distributed and int(world_env or 1) <= 1 and not dist.is_initialized():
        return DistributedContext(), resolve_device(config.runtime.device)
    if world_env is None and not dist.is_initialized():
        raise ConfigError(
            "train.distributed is set but WORLD_SIZE/RANK are not: launch with "
            "'torchrun --nproc_per_node N ...' or set train.distributed to false"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(config.runtime.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = cfg.dist_backend if cfg.dist_backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(f"train.dist_backend 'nccl' needs CUDA but training runs on {device}; use 'gloo' or 'auto'")
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))
    context = DistributedContext(dist.get_rank(), local_rank, dist.get_world_size(), True, owns_group)
    logger.info(
        "distributed training: rank %d of %d on %s (%s)", context.rank, context.world_size, device, dist.get_backend()
    )
    return context, device


def close_distributed(context: DistributedContext) -> None:
    """Destroy the process group that :func:`setup_distributed` created (a no-op for one it did not)."""
    if context.owns_group and dist.is_initialized():
        # The engines hold the DDP model in reference cycles; free them (and the gloo work they keep) while the
        # process group is alive, else they are freed at interpreter exit and gloo's threads abort the process.
        gc.collect()
        dist.destroy_process_group()


def from_main_process(value: Any, context: DistributedContext) -> Any:
    """``value`` as rank 0 has it, on every process (a collective under DDP; ``value`` itself otherwise)."""
    if not context.enabled:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def validation_share(val_items: Sequence[dict], context: DistributedContext) -> Sequence[dict]:
    """This process's validation cases: a shard under DDP (metrics are gathered across processes by
    MONAI), all of them when there are fewer cases than processes (duplicates leave the means unchanged)."""
    if not context.enabled or len(val_items) < context.world_size:
        return val_items
    return partition_dataset(list(val_items), num_partitions=context.world_size, shuffle=False, even_divisible=False)[
        context.rank
    ]


class DistributedEpochEnd:
    """Keep the processes of a DDP run in step at each epoch end.

    Validation is collective (every process evaluates its shard and MONAI gathers the metrics), so the
    extra validation of the final epoch and the time-budget stop are decided once, on rank 0, and
    broadcast, before rank 0's :class:`RunLogger` writes the epoch with every process's random states.
    """

    def __init__(
        self,
        evaluator: Engine,
        run_logger: RunLogger | None,
        time_budget_min: float | None,
        device: torch.device,
        rng: RngState,
    ):
        self.evaluator = evaluator
        self.rng = rng
        self.run_logger = run_logger
        self.budget_s = None if time_budget_min is None else 60.0 * time_budget_min
        self.device = device

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        spent = self.run_logger is not None and self.budget_s is not None and self.run_logger.elapsed_s >= self.budget_s
        flag = torch.tensor([int(spent)], device=self.device)
        dist.broadcast(flag, src=0)
        spent = bool(flag.item())
        epoch = engine.state.epoch
        if (spent or epoch >= engine.state.max_epochs) and self.evaluator.state.epoch != epoch:
            self.evaluator.run(epoch)
        self.rng.gather()
        if spent and epoch < engine.state.max_epochs:
            logger.info("time budget of %.1f min spent after epoch %d; stopping", self.budget_s / 60, epoch)
            engine.terminate()
