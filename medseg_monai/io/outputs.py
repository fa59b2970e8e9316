"""Facts about written masks: is an output complete, leftovers of interrupted writes, checksums, label maps and
their statistics.

Leaf helpers shared by the batch runner (skip-done, the manifest) and anyone checking a folder of masks.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.io.dicom_seg import seg_matches_source
from medseg_monai.io.geometry import read_geometry
from medseg_monai.io.seg_files import is_seg_file
from medseg_monai.io.writers import label_sidecar_path

__all__ = [
    "as_label_map",
    "count_components",
    "file_sha256",
    "is_complete",
    "mask_statistics",
    "remove_stale_temporaries",
    "value_counts",
]

logger = logging.getLogger(__name__)


def is_complete(output: str | Path, source: str | Path, sidecar: bool = False) -> bool:
    """True when ``output`` exists, reads back, and has the spatial shape of ``source``; a DICOM SEG must reference
    ``source``'s series and every one of its slices and hold all its pixel data.

    With ``sidecar``, its label file (:func:`~medseg_monai.io.writers.label_sidecar_path`, written after
    the mask) must exist and parse too, so a write stopped between the two is redone.
    """
    output = Path(output)
    try:
        if not output.is_file() or output.stat().st_size == 0:
            return False
        if sidecar:
            labels = label_sidecar_path(output)
            if not isinstance(json.loads(labels.read_text(encoding="utf-8")).get("labels"), dict):
                raise ValueError(f"{labels}: no labels")
        if is_seg_file(output):
            seg_matches_source(output, source)
        return read_geometry(output).shape == read_geometry(source).shape
    except (OSError, ValueError, AttributeError) as err:
        logger.info("%s: existing output is not usable (%s); predicting again", output, err)
        return False


def remove_stale_temporaries(output: str | Path) -> list[Path]:
    """Delete temporaries an interrupted write of ``output`` (or its label sidecar) left beside it."""
    removed = []
    for final in (Path(output), label_sidecar_path(output)):
        for name in glob.glob(str(final.parent / f".{glob.escape(final.name)}.*.tmp*")):
            try:
                Path(name).unlink()
                removed.append(Path(name))
            except FileNotFoundError:
                continue
    if removed:
        logger.info("removed %d leftover temporary file(s) of %s", len(removed), output)
    return removed


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def as_label_map(array: np.ndarray, spatial_dims: int) -> np.ndarray:
    """An integer label map from a loaded mask: the first channel of a multi-channel mask, integers kept as
    they are (no copy), integral floats rounded to ``int32``."""
    array = np.asarray(array)
    if array.ndim > spatial_dims:
        array = array[..., 0]
    if array.dtype.kind in "iub":
        return array
    return np.rint(array).astype(np.int32)


def count_components(binary: np.ndarray) -> int:
    """Connected components of a boolean mask (full connectivity: 8 in 2D, 26 in 3D)."""
    from scipy import ndimage

    if not binary.any():
        return 0
    box = []
    for axis in range(binary.ndim):
        hit = np.flatnonzero(binary.any(axis=tuple(a for a in range(binary.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    structure = ndimage.generate_binary_structure(binary.ndim, binary.ndim)
    return int(ndimage.label(binary[tuple(box)], structure=structure)[1])


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """``{value: count}`` of the values present in an integer or boolean array (any memory order, no copy)."""
    flat = mask.ravel(order="K")  # no copy of a Fortran-ordered mask
    if mask.dtype in (np.uint8, np.bool_) and flat.flags.writeable:  # torch warns on read-only arrays
        import torch  # several times faster than np.bincount, which widens every element to int64 first

        counts = torch.bincount(torch.from_numpy(flat.view(np.uint8))).numpy()
    elif mask.dtype.kind == "u":
        counts = np.bincount(flat)
    else:
        return {int(v): int(c) for v, c in zip(*np.unique(mask, return_counts=True))}
    return {int(v): int(c) for v, c in enumerate(counts) if c}


def mask_statistics(
    mask: np.ndarray, spacing: Sequence[float], names: Mapping[int, str] | None = None, background: int = 0
) -> dict[str, dict[str, Any]]:
    """Per foreground value: ``name``, ``count`` (voxels or pixels), ``volume_ml`` (3D), ``components``.

    Every named value is listed (count 0 when absent), plus any unnamed value present in the mask.
    """
    names = dict(names or {})
    present = value_counts(mask)
    values = sorted((set(names) | set(present)) - {int(background)})
    voxel_ml = float(np.prod(spacing)) / 1000.0 if mask.ndim == 3 else None
    stats: dict[str, dict[str, Any]] = {}
    for value in values:
        count = present.get(value, 0)
        entry: dict[str, Any] = {"name": names.get(value, f"label_{value}"), "count": count}
        if voxel_ml is not None:
            entry["volume_ml"] = round(count * voxel_ml, 6)
        entry["components"] = count_components(mask == value) if count else 0
        stats[str(value)] = entry
    return stats
