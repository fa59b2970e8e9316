"""Checkpoints: one self-describing file per save, written atomically, loadable with ``weights_only=True``.

A checkpoint is a plain dict of tensors and JSON-like values::

    {"format_version": 1, "network": state_dict, "config": RunConfig.to_dict(),
     "optimizer": ..., "scheduler": ..., "trainer": {"epoch", "iteration", ...},
     "best_metric": float, "best_epoch": int, "history": [per-epoch metric rows]}

so a run folder's ``checkpoints/best.pt`` alone is enough to rebuild the network and its preprocessing.
Training checkpoints add ``"rng"`` (random states, see :mod:`medseg_monai.training.resume`), ``"scaler"``
and ``trainer["elapsed_s"]``; random states are tensors and plain lists, never pickled objects.

Writes go to a temporary file that is flushed to disk and renamed onto the target, so a crash leaves the
old file or the new one, never a mix. ``save_checkpoint(..., keep_previous=True)`` (``last.pt``) first
renames the file it replaces to ``last.prev.pt``; :func:`load_latest_checkpoint` falls back to that
previous good file, with a warning, when ``last.pt`` is missing, truncated or corrupt.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from medseg_monai.errors import CheckpointError
from medseg_monai.utils import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "load_latest_checkpoint", "previous_path", "save_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def previous_path(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the version of ``path`` it replaced: ``last.pt`` -> ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: str | Path, payload: Mapping[str, Any], *, keep_previous: bool = False) -> Path:
    """Write ``payload`` (plus the format version) to ``path`` via a flushed temp file and rename.

    With ``keep_previous`` the file being replaced is first renamed to :func:`previous_path`.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format_version": CHECKPOINT_FORMAT, **payload}, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        if keep_previous and path.is_file():
            os.replace(path, previous_path(path))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Accepts our format and bare ``state_dict`` files (returned as ``{"network": state_dict}``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint, naming the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with (
            warnings.catch_warnings()
        ):  # torch's note on the pickle protocol of a foreign file: the error below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused something: a pickled object, possibly code
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f"a pickled {found.group(1)}" if found else "pickled objects"
        raise CheckpointError(
            f"{path}: not a readable checkpoint: it holds {what}, which is refused unread "
            "(checkpoints load with weights_only=True and never run pickled code)"
        ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {reason[0] if reason else ''})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: checkpoint holds a {type(payload).__name__}, expected a dict")
    if "network" not in payload:
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            return {"network": payload}
        raise CheckpointError(f"{path}: checkpoint has no 'network' entry (keys: {sorted(payload)[:8]})")
    version = payload.get("format_version", CHECKPOINT_FORMAT)
    if version > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than supported ({CHECKPOINT_FORMAT})")
    return payload


def load_latest_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", required: Sequence[str] = ()
) -> tuple[dict[str, Any], Path]:
    """Load ``path``, or its previous version (:func:`previous_path`) with a warning when ``path`` is missing,
    unreadable or lacks one of the ``required`` entries. Returns the checkpoint and the file it came from.

    Raises:
        CheckpointError: neither file is usable; the message names both and why.
    """
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        try:
            payload = load_checkpoint(candidate, map_location)
            missing = [key for key in required if key not in payload]
            if missing:
                raise CheckpointError(f"{candidate}: checkpoint has no {', '.join(map(repr, missing))} entry")
        except (CheckpointError, FileNotFoundError) as err:
            problems.append(" ".join(str(err).split()))  # one line: torch's messages can span several
            continue
        if candidate != path:
            logger.warning("%s; using the previous checkpoint %s", problems[0], candidate)
        return payload, candidate
    raise CheckpointError(f"no usable checkpoint to resume from: {'; '.join(problems)}")
