"""Checkpoints: one self-describing file per save, written atomically, loadable with ``weights_only=True``.

A checkpoint is a plain dict of tensors and JSON-like values::

    {"format_version": 1, "network": state_dict, "config": RunConfig.to_dict(),
     "optimizer": ..., "scheduler": ..., "trainer": {"epoch", "iteration", ...},
     "best_metric": float, "best_epoch": int, "history": [per-epoch metric rows]}

so a run folder's ``checkpoints/best.pt`` alone is enough to rebuild the network and its preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medseg_monai.errors import CheckpointError
from medseg_monai.utils import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus the format version) to ``path`` via a temp file and rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format_version": CHECKPOINT_FORMAT, **payload}, tmp)
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
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
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
