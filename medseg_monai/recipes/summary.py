"""A run's ``summary.json``: the command that repeats the run, the versions it ran with, strict JSON on disk."""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medseg_monai.utils import atomic_write_text, package_versions

__all__ = ["canonical_command", "jsonable", "runtime_versions", "write_summary"]


def canonical_command(
    name: str,
    network: str,
    out: Path,
    time_budget_min: float,
    smoke: bool,
    seed: int,
    data_root: str | Path | None = None,
    pretrained: str | None = None,
    epochs: int | None = None,
    checkpoint: str = "last",
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """The ``medseg run`` line that repeats a run."""
    parts = [
        "medseg",
        "run",
        f"pipelines/{name}.py",
        "--network",
        network,
        "--time-budget-min",
        f"{time_budget_min:g}",
        "--seed",
        str(seed),
    ]
    if smoke:
        parts.append("--smoke")
    if epochs is not None:
        parts += ["--epochs", str(epochs)]
    if pretrained:
        parts += ["--pretrained", str(pretrained)]
    if checkpoint != "last":
        parts += ["--checkpoint", checkpoint]
    for key, value in (overrides or {}).items():
        parts += ["--set", f"{key}={json.dumps(value)}"]
    if data_root:
        parts += ["--data-root", str(data_root)]
    parts += ["--out", str(out)]
    return shlex.join(parts)


def runtime_versions() -> dict[str, str]:
    """Package versions, torch's thread count, the CPU count and the GPU (``none`` without one)."""
    import torch

    versions = package_versions()
    versions["torch_threads"] = str(torch.get_num_threads())
    versions["cpu_count"] = str(os.cpu_count())
    versions["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return versions


def jsonable(value: Any) -> Any:
    """NaN -> None so the summary is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_summary(path: Path, summary: Mapping[str, Any]) -> Path:
    """``summary`` as strict JSON (NaN written as ``null``), atomically."""
    return atomic_write_text(path, json.dumps(jsonable(summary), indent=2) + "\n")
