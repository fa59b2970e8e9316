"""Exact resumption of a training run after a crash or ``kill -9``.

What a resume restores, from ``checkpoints/last.pt`` (the last *completed* epoch):

* network, optimiser, scheduler (or :class:`~medseg_monai.training.handlers.TimeBudgetSchedule`), the CUDA
  grad scaler, epoch and iteration counters, best metric and epoch, metric history;
* the time-budget accounting (wall-clock seconds spent on completed epochs; the partial epoch a crash
  interrupted is not charged);
* every random state the next epoch draws from (:class:`RngState`): Python's ``random``, NumPy's global
  state, torch's CPU and CUDA generators, the training loader's generator (sampler order, worker seeds)
  and the ``RandomState`` of every randomised MONAI transform of the training and validation datasets.
  Under DDP each process's states are gathered to rank 0 and saved per rank.

So a resumed run draws exactly the batches and augmentations an uninterrupted run would have drawn, and
with deterministic kernels (CPU, or cuDNN in MONAI's deterministic mode as :func:`~medseg_monai.utils.set_seed`
sets it) ends with the same weights and metrics. Runs scheduled by time (``train.schedule_by_time``)
depend on wall-clock time and are not reproducible, resumed or not.

Fallback: :func:`~medseg_monai.models.checkpoint.save_checkpoint` keeps the previous ``last.pt`` as
``last.prev.pt``; :func:`open_for_resume` uses it, with a warning naming the bad file, when ``last.pt``
is missing, truncated or corrupt (the bad file is kept as ``last.corrupt.pt`` and the good one copied onto
``last.pt``, so the next save rotates a good file into ``last.prev.pt``). It also removes temporary files a
killed write left behind and rewrites ``best.pt`` when a crash fell between writing ``last.pt`` and ``best.pt``
of the same epoch.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from medseg_monai.errors import CheckpointError
from medseg_monai.models.checkpoint import load_checkpoint, load_latest_checkpoint
from medseg_monai.utils import atomic_path

__all__ = ["RngState", "ScalerState", "open_for_resume", "restore_states"]

logger = logging.getLogger(__name__)

#: run-folder files whose interrupted atomic writes leave ``.NAME.*.tmp*`` files behind
_RUN_FILES = ("config.json", "splits.json", "metrics.csv", "curves.png")


def _random_states(obj: Any, seen: set[int], depth: int = 0) -> Iterator[np.random.RandomState]:
    """Every NumPy ``RandomState`` reachable from ``obj`` through attributes, lists, tuples and dicts,
    in a stable order (MONAI's randomised transforms keep theirs in ``R``, some in nested transforms)."""
    if depth > 8 or id(obj) in seen or isinstance(obj, (str, bytes, int, float, torch.Tensor, np.ndarray)):
        return
    seen.add(id(obj))
    if isinstance(obj, np.random.RandomState):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _random_states(item, seen, depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _random_states(item, seen, depth + 1)
    elif hasattr(obj, "__dict__"):
        for item in vars(obj).values():
            yield from _random_states(item, seen, depth + 1)


def _numpy_state(state: tuple) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = state
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _numpy_tuple(state: dict[str, Any]) -> tuple:
    return state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["gauss"]


class RngState:
    """The random states of one training process, as a checkpoint entry of tensors and plain values.

    ``transforms`` are the objects whose randomised transforms are saved (the datasets); ``generator`` is the
    training loader's. Under DDP, :meth:`gather` (a collective, called by every process at each epoch end)
    collects all processes' states for rank 0 to save.
    """

    def __init__(self, transforms: Sequence[Any], generator: torch.Generator, rank: int = 0, world_size: int = 1):
        self.transforms = list(transforms)
        self.generator = generator
        self.rank = rank
        self.world_size = world_size
        self._gathered: list[dict] | None = None

    def _transform_states(self) -> list[np.random.RandomState]:
        seen: set[int] = set()
        return [state for obj in self.transforms for state in _random_states(getattr(obj, "transform", obj), seen)]

    def capture(self) -> dict[str, Any]:
        """This process's states now."""
        version, internal, gauss = random.getstate()
        state: dict[str, Any] = {
            "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "transforms": [_numpy_state(r.get_state()) for r in self._transform_states()],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def gather(self) -> None:
        """Collect every process's states (DDP collective; a no-op in a single process)."""
        if self.world_size > 1:
            states: list[Any] = [None] * self.world_size
            dist.all_gather_object(states, self.capture())
            self._gathered = states

    def state_dict(self) -> dict[str, Any]:
        ranks = self._gathered if self._gathered is not None else [self.capture()]
        self._gathered = None
        return {"ranks": ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore this process's states; warns and keeps the fresh seeds when the checkpoint has none for it."""
        ranks = state.get("ranks", [])
        if len(ranks) != self.world_size:
            logger.warning(
                "checkpoint holds random states of %d process(es), this run has %d: continuing with fresh seeds",
                len(ranks),
                self.world_size,
            )
            return
        saved = ranks[self.rank]
        transforms = self._transform_states()
        if len(saved["transforms"]) != len(transforms):
            logger.warning(
                "checkpoint holds %d transform random states, the transforms have %d: continuing with fresh seeds",
                len(saved["transforms"]),
                len(transforms),
            )
            return
        python = saved["python"]
        random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
        np.random.set_state(_numpy_tuple(saved["numpy"]))
        torch.set_rng_state(saved["torch"])
        self.generator.set_state(saved["generator"])
        for r, values in zip(transforms, saved["transforms"]):
            r.set_state(_numpy_tuple(values))
        if "cuda" in saved and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved["cuda"])


class ScalerState:
    """The CUDA grad scaler of a ``SupervisedTrainer`` as a checkpoint entry (it exists only once the trainer runs)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self._pending: dict | None = None

    def attach(self, trainer: Any) -> None:
        """Load a restored state into the grad scaler when ``trainer`` (the one saved) starts and creates it."""
        from ignite.engine import Events

        trainer.add_event_handler(Events.STARTED, self._started)

    def _started(self, engine: Any) -> None:
        if self._pending and getattr(engine, "scaler", None) is not None:
            engine.scaler.load_state_dict(self._pending)
        self._pending = None

    def state_dict(self) -> dict:
        scaler = getattr(self.trainer, "scaler", None)
        return scaler.state_dict() if scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._pending = dict(state)


def _remove_temp_files(run_dir: Path) -> None:
    """Delete the temporary files of atomic writes that a killed process left in ``run_dir``."""
    stale = [p for name in _RUN_FILES for p in run_dir.glob(f".{name}.*.tmp*")]
    stale += list((run_dir / "checkpoints").glob(".*.pt.*.tmp*"))
    for path in stale:
        logger.info("removing %s, left by an interrupted write", path)
        path.unlink(missing_ok=True)


def _reconcile_best(checkpoints: Path, checkpoint: dict, source: Path) -> None:
    """``best.pt`` is written after ``last.pt``: when a crash fell between them, the epoch being resumed was the
    best and ``last.pt`` holds exactly what ``best.pt`` should; copy it."""
    epoch, best_epoch = int(checkpoint["trainer"]["epoch"]), int(checkpoint.get("best_epoch", 0))
    best = checkpoints / "best.pt"
    try:
        best_saved = int(load_checkpoint(best)["trainer"]["epoch"]) if best.is_file() else None
    except (CheckpointError, KeyError, TypeError):
        best_saved = None
    if best_epoch == epoch and best_saved != epoch:
        logger.warning("%s does not hold the best epoch %d; copying it from %s", best, best_epoch, source)
        with atomic_path(best) as tmp:
            shutil.copyfile(source, tmp)
    elif best_saved is not None and best_saved > epoch:
        logger.warning(
            "%s is from epoch %d, after the resumed epoch %d; it is replaced when the validation Dice improves",
            best,
            best_saved,
            epoch,
        )


def open_for_resume(run_dir: Path, is_main: bool = True) -> dict[str, Any]:
    """The checkpoint to resume ``run_dir`` from: ``checkpoints/last.pt``, or ``last.prev.pt`` with a warning.

    On the main process it also tidies what an interrupted run left behind (temporary files, a missing ``best.pt``).

    Raises:
        CheckpointError: neither file is a usable training checkpoint; the message names them.
    """
    checkpoints = run_dir / "checkpoints"
    checkpoint, source = load_latest_checkpoint(checkpoints / "last.pt", required=("config", "trainer"))
    if is_main:
        _remove_temp_files(run_dir)
        last = checkpoints / "last.pt"
        if source != last:  # put the good file back as last.pt, so that the next save keeps it as last.prev.pt
            if last.exists():
                os.replace(last, checkpoints / "last.corrupt.pt")
                logger.warning("kept the unusable %s as %s", last, checkpoints / "last.corrupt.pt")
            with atomic_path(last) as tmp:
                shutil.copyfile(source, tmp)
        _reconcile_best(checkpoints, checkpoint, last)
    return checkpoint


def restore_states(checkpoint: dict[str, Any], state_objects: dict[str, Any]) -> None:
    """Load every entry of ``state_objects`` that the checkpoint holds (``rng`` last, after all else is built)."""
    for key in sorted(state_objects, key=lambda k: k == "rng"):
        if key in checkpoint:
            state = checkpoint[key]
            if isinstance(state_objects[key], torch.optim.lr_scheduler.LambdaLR) and "lr_lambdas" not in state:
                # saved by CosineAnnealingLR/PolynomialLR (older versions): the same closed-form rates, keep the
                # epoch count
                state = {
                    "base_lrs": state["base_lrs"],
                    "last_epoch": state["last_epoch"],
                    "_last_lr": state.get("_last_lr"),
                    "lr_lambdas": [None] * len(state["base_lrs"]),
                }
            state_objects[key].load_state_dict(state)
        elif key == "rng":
            logger.warning(
                "checkpoint has no random states (saved by an older version): the resumed run draws fresh ones"
            )
