"""Small helpers with no heavy imports: atomic writes, seeding, device choice, progress and log files."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medseg_monai.errors import ConfigError, OutputError

__all__ = [
    "LOG_FORMAT",
    "PROGRESS_MODES",
    "REPORTED_PACKAGES",
    "atomic_path",
    "atomic_write_text",
    "log_to_file",
    "package_versions",
    "progress_bars",
    "resolve_device",
    "set_progress",
    "set_seed",
]

#: how the package's log lines read, on the console and in the run folders' log files
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: ``auto``: progress bars on a terminal, one log line per epoch or case elsewhere; ``on``; ``off``
PROGRESS_MODES = ("auto", "on", "off")
_progress = {"mode": "auto"}


def set_progress(mode: str) -> None:
    """Choose where progress bars are drawn, for the whole process (the front end's ``--progress``)."""
    if mode not in PROGRESS_MODES:
        raise ConfigError(f"progress must be one of {', '.join(PROGRESS_MODES)}, got {mode!r}")
    _progress["mode"] = mode


def progress_bars() -> bool:
    """Whether to draw progress bars: ``on``, or ``auto`` with standard error on a terminal (a log file gets
    one line per step of work instead of carriage returns)."""
    mode = _progress["mode"]
    if mode == "auto":
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return mode == "on"


@contextlib.contextmanager
def log_to_file(path: Path, append: bool = False) -> Iterator[None]:
    """The package's log records of the block written to ``path`` as well, INFO included, whatever the console
    shows (``medseg -q`` keeps its console to warnings)."""
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    package_logger = logging.getLogger("medseg_monai")
    saved_level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved_level)
        handler.close()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    The temporary name keeps ``final``'s full suffix (``.nii.gz``, ``.png``) so writers that pick a
    format from the suffix behave, and it starts with a dot so folder scans ignore it.

    Raises:
        OutputError: naming ``final``, when its folder cannot be written (read-only, a path through a
            file), the rename fails (``final`` is a folder), or the block fails for a full disk or quota
            or a read-only file system. The temporary is removed in every case.
    """
    final = Path(final)
    suffix = "".join(final.suffixes) if final.suffixes else ""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    except OSError as err:  # a read-only folder, a parent that is a file
        raise _unwritable(final, err) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as err:
            if err.errno in _OUTPUT_ERRNOS and not isinstance(err, OutputError):
                raise _unwritable(final, err) from err
            raise
        try:
            os.replace(tmp, final)
        except OSError as err:  # ``final`` is a folder, or the folder became read-only
            raise _unwritable(final, err) from err
    finally:
        if tmp.exists():
            tmp.unlink()


#: errors of a write that are the output's fault: a full disk or quota, a read-only file system, a file too large
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _unwritable(final: Path, err: OSError) -> OutputError:
    """``OutputError`` naming the file that could not be written and why (not the hidden temporary)."""
    reason = err.strerror or str(err) or type(err).__name__
    blocking = next((p for p in final.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        reason = f"{blocking} is a file, not a folder"
    unwritable = OutputError(f"{final}: cannot write ({reason})")
    unwritable.errno = err.errno  # callers testing ``errno.ENOSPC`` keep working
    return unwritable


def atomic_write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
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


def resolve_device(name: str | None) -> torch.device:  # noqa: F821
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
