"""Per-label statistics of a mask over its source image: size, intensity inside, extent, position, components.

What ``medseg predict --statistics`` puts in ``predict_statistics.csv`` and the manifest. Intensities are
the source image's own values as the readers return them (NIfTI scaling and DICOM rescale applied: HU for
CT); colour images use the mean of their colour channels. Positions are in patient coordinates, LPS (the
DICOM convention; NIfTI's RAS has x and y negated), from the source's affine; raster images have no
patient space and report pixel positions (row, column) instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.io.outputs import mask_statistics
from medseg_monai.utils import atomic_path

__all__ = ["STATISTICS_COLUMNS", "label_statistics", "write_statistics_csv"]

_AXES = ("x", "y", "z")
#: columns of ``predict_statistics.csv``, in order (2D masks leave the ``z`` and volume columns empty)
STATISTICS_COLUMNS: tuple[str, ...] = (
    "case",
    "label",
    "name",
    "voxels",
    "volume_ml",
    "mean",
    "median",
    "std",
    "min",
    "max",
    *(f"bbox_{end}_{a}" for end in ("min", "max") for a in _AXES),
    *(f"bbox_size_mm_{a}" for a in _AXES),
    *(f"centroid_{a}" for a in _AXES),
    "components",
    "touches_border",
)


def label_statistics(
    mask: np.ndarray,
    image: np.ndarray,
    affine_ras: np.ndarray,
    spacing: Sequence[float],
    names: Mapping[int, str] | None = None,
    background: int = 0,
    sizes: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Statistics of every foreground value of ``mask`` (and every named one, empty when absent).

    Args:
        mask: ``(*spatial)`` label values in the readers' index order.
        image: the source image in the same order, ``(*spatial)`` or ``(*spatial, C)`` (channels averaged).
        affine_ras: ``(4, 4)`` index-to-RAS matrix of the source (ignored for 2D masks).
        spacing: voxel size along each axis (mm; 1 for raster images).
        names: label name by value.
        background: the value not reported.
        sizes: :func:`~medseg_monai.io.outputs.mask_statistics` of this mask when already computed (name, count,
            volume and components per value; computed here otherwise).

    Returns:
        One row per label with the keys of :data:`STATISTICS_COLUMNS` except ``case``; bounding boxes are
        inclusive voxel indices, ``bbox_size_mm`` the box's extent, ``centroid`` the mean voxel position
        (LPS mm for volumes, pixels for 2D), ``touches_border`` whether the label reaches the image's edge
        (its size is then a lower bound).
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == mask.ndim + 1:
        image = image.mean(axis=-1)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} does not match the mask's {mask.shape}")
    sizes = sizes if sizes is not None else mask_statistics(mask, spacing, names, background)
    volume = mask.ndim == 3
    rows = []
    for key, size in sizes.items():
        value, count = int(key), int(size["count"])
        row: dict[str, Any] = {
            "label": value,
            "name": size["name"],
            "voxels": count,
            "volume_ml": size.get("volume_ml"),
        }
        if count == 0:
            row.update({key: None for key in STATISTICS_COLUMNS if key not in row and key != "case"})
            row.update(components=0, touches_border=False)
            rows.append(row)
            continue
        inside = mask == value
        hits = image[inside]
        row.update(
            mean=round(float(hits.mean()), 4),
            median=round(float(np.median(hits)), 4),
            std=round(float(hits.std()), 4),
            min=float(hits.min()),
            max=float(hits.max()),
        )
        box = ndimage.find_objects(inside.astype(np.uint8))[0]
        low = [int(s.start) for s in box]
        high = [int(s.stop) - 1 for s in box]
        centroid = np.asarray(ndimage.center_of_mass(inside), dtype=np.float64)
        if volume:
            ras = np.asarray(affine_ras, dtype=np.float64) @ np.append(centroid, 1.0)
            centroid = np.array([-ras[0], -ras[1], ras[2]])  # RAS -> LPS
        for k, axis in enumerate(_AXES):
            inside_axis = k < mask.ndim
            row[f"bbox_min_{axis}"] = low[k] if inside_axis else None
            row[f"bbox_max_{axis}"] = high[k] if inside_axis else None
            row[f"bbox_size_mm_{axis}"] = round((high[k] - low[k] + 1) * float(spacing[k]), 4) if inside_axis else None
            row[f"centroid_{axis}"] = round(float(centroid[k]), 4) if inside_axis else None
        row["components"] = int(size["components"])
        row["touches_border"] = any(lo == 0 or hi == n - 1 for lo, hi, n in zip(low, high, mask.shape))
        rows.append(row)
    return rows


def write_statistics_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write statistics rows (with a ``case`` key each) as CSV with :data:`STATISTICS_COLUMNS`, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(STATISTICS_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if row.get(key) is None else row.get(key)) for key in STATISTICS_COLUMNS})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
