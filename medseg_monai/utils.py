"""Small helpers with no heavy imports: atomic writes, seeding, device choice."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medseg_monai.errors import ConfigError

__all__ = ["REPORTED_PACKAGES", "atomic_path", "atomic_write_text", "package_versions", "resolve_device", "set_seed"]


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    The temporary name keeps ``final``'s full suffix (``.nii.gz``, ``.png``) so writers that pick a
    format from the suffix behave, and it starts with a dot so folder scans ignore it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes) if final.suffixes else ""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, torch and MONAI's global randomness."""
    import numpy as np
    import torch
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_determinism(seed=seed)


def resolve_device(name: str | None) -> "torch.device":  # noqa: F821
    """``auto`` -> CUDA when available else CPU; anything else is passed to ``torch.device``.

    Under a multi-process ``torchrun`` launch (``WORLD_SIZE > 1``) on a machine with several GPUs, ``auto``
    is the GPU of this process's ``LOCAL_RANK`` (one GPU per process).
    """
    import torch

    if name in (None, "", "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank, count = os.environ.get("LOCAL_RANK"), torch.cuda.device_count()
        several = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and local_rank is not None and count > 1
        return torch.device("cuda", int(local_rank) % count) if several else torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


#: packages whose versions go into run manifests and recipe summaries
REPORTED_PACKAGES = ("medseg-monai", "monai", "torch", "numpy", "nibabel", "SimpleITK", "pillow", "scipy")


def package_versions(packages: tuple[str, ...] = REPORTED_PACKAGES) -> dict[str, str]:
    """Python and installed package versions (``"not installed"`` for a missing one), without importing them."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
