"""The data-dependent settings of a run, resolved in one place before training.

:func:`resolve_data_config` fills every ``None`` field of :class:`~medseg_monai.config.DataConfig` that
depends on the data: 2D or 3D (from the images' format), the patch size (its default for that), input
channels, label values and names, and the target spacing. ``medseg train``, the Python API and the
bundles all train through :func:`medseg_monai.training.train`, which calls it, so the same folder gives
the same configuration whichever way it is trained.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg_monai.config import DataConfig
from medseg_monai.data.channels import (
    as_source,
    dataset_channel_names,
    geometry_source,
    resolve_channel_names,
    source_files,
)
from medseg_monai.errors import ConfigError, InputError
from medseg_monai.io import load_image, read_geometry, spatial_dims_of
from medseg_monai.io.validation import GRID_TOLERANCE
from medseg_monai.keys import IMAGE, LABEL

__all__ = [
    "check_pairs",
    "collect_label_values",
    "mask_values",
    "median_spacing",
    "resolve_channels",
    "resolve_data_config",
]

logger = logging.getLogger(__name__)


def mask_values(path: str, spatial_dims: int) -> np.ndarray:
    """The sorted distinct values of one training mask.

    Raises:
        InputError: an RGB mask whose channels differ, or non-integer values, naming the file and the values.
    """
    array = np.asarray(load_image(path, role="mask"))
    if array.ndim > spatial_dims:
        if array.shape[-1] > 1 and not all(
            np.array_equal(array[..., 0], array[..., c]) for c in range(1, array.shape[-1])
        ):
            raise InputError(
                f"{path}: a colour mask ({array.shape[-1]} channels that differ); save the labels as one "
                "gray channel of class values"
            )
        array = array[..., 0]
    unique = np.unique(array)
    fractional = unique[np.mod(unique, 1) != 0]
    if fractional.size:
        shown = ", ".join(f"{v:g}" for v in unique[:6]) + (", ..." if unique.size > 6 else "")
        raise InputError(
            f"{path}: mask values {shown} are not integers ({fractional.size} fractional); data.label_values "
            "maps integer values only: save the masks as integer class values (no interpolation)"
        )
    return unique


#: class values up to this are taken as labels even with gaps (BraTS' 0/1/2/4); above it, only 0..K or two values
SMALL_LABEL_VALUE = 63


def _is_label_map(values: Sequence[int]) -> bool:
    """Class values ``0, 1, ..., K``, small values with gaps (``0/1/2/4``), or a binary mask of two values
    (``0/255``)."""
    values = sorted(values)
    return len(values) <= 2 or values == list(range(len(values))) or max(values) <= SMALL_LABEL_VALUE


def collect_label_values(
    label_paths: Sequence[str], spatial_dims: int, expected: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Sorted union of the integer values found in the masks (background 0 always included), checked.

    Without ``expected``, the values must look like a label map (``0..K``, small values up to
    :data:`SMALL_LABEL_VALUE` with gaps, or two values such as ``0/255``):
    anything else (``0/128/255`` anti-aliased edges, 16-bit masks with sparse values) is refused with the
    ``data.label_values`` setting that would accept them. With ``expected`` (the configured
    ``data.label_values``), every mask value must be one of them.

    Raises:
        InputError: naming the mask file, the values found and the setting that would map them.
    """
    values: set[int] = {0}
    widest: tuple[str, list[int]] | None = None
    for path in label_paths:
        found = [int(v) for v in mask_values(path, spatial_dims)]
        if expected is not None and not set(found) <= set(expected):
            unknown = sorted(set(found) - set(expected))
            raise InputError(
                f"{path}: mask values {_shown(unknown)} are not in data.label_values {list(expected)} "
                f"(found {_shown(found)}; add them to data.label_values if they are classes)"
            )
        if widest is None or len(found) > len(widest[1]):
            widest = (path, found)
        values.update(found)
    ordered = tuple(sorted(values))
    if expected is None and widest is not None and not _is_label_map(ordered):
        path, found = widest
        raise InputError(
            f"{path}: mask values {_shown(found)} (all masks: {_shown(ordered)}) do not look like class labels "
            f"0, 1, 2, ... (anti-aliased edges or a resampled mask?); if they are the classes, set "
            f"data.label_values (--label-values {' '.join(map(str, ordered))})"
        )
    return ordered


def _shown(values: Sequence[int], limit: int = 12) -> str:
    values = list(values)
    return "[" + ", ".join(map(str, values[:limit])) + (", ...]" if len(values) > limit else "]")


def median_spacing(image_paths: Sequence[str], orientation: str | None = "RAS") -> tuple[float, ...]:
    """Median voxel spacing over volumes, in the axis order after reorientation to ``orientation``."""
    import nibabel as nib

    spacings = []
    for path in image_paths:
        geometry = read_geometry(path)
        spacing = np.asarray(geometry.spacing, dtype=float)
        if orientation:
            ornt = nib.orientations.io_orientation(np.asarray(geometry.affine_ras))
            target = nib.orientations.axcodes2ornt(orientation)
            transform = nib.orientations.ornt_transform(ornt, target)
            reordered = np.empty_like(spacing)
            reordered[transform[:, 0].astype(int)] = spacing
            spacing = reordered
        spacings.append(spacing)
    return tuple(float(v) for v in np.median(np.stack(spacings), axis=0))


def resolve_data_config(cfg: DataConfig, train_pairs: Sequence[dict]) -> DataConfig:
    """Fill the fields left as ``None`` from the training data; explicit settings are kept.

    In order: ``spatial_dims`` from the first training image's format (which also gives the default
    ``patch_size``), ``in_channels`` and ``channel_names`` (:func:`resolve_channels`), ``label_values`` from
    all training masks, ``label_names``, and for volumes ``target_spacing`` as the median spacing of the
    training images (channel 0 of cases of several files).
    """
    if not train_pairs:
        raise InputError("no training cases to resolve the data configuration from")
    first_image = str(geometry_source(as_source(train_pairs[0][IMAGE])))
    if cfg.spatial_dims is None:
        cfg = dataclasses.replace(cfg, spatial_dims=spatial_dims_of(first_image))
        logger.info("%dD data (from the format of %s)", cfg.spatial_dims, Path(first_image).name)
    cfg = _resolve_slicing(cfg, first_image)
    image_dims = cfg.image_dims
    changes: dict = resolve_channels(cfg, train_pairs)
    label_values = cfg.label_values
    if label_values is not None:
        collect_label_values([p[LABEL] for p in train_pairs], image_dims, expected=label_values)
    else:
        label_values = collect_label_values([p[LABEL] for p in train_pairs], image_dims)
        if len(label_values) < 2:
            raise InputError(f"training masks of {cfg.data_dir or 'the datalist'} hold only background")
        changes["label_values"] = label_values
        logger.info("label values found in the training masks: %s", list(label_values))
    if cfg.label_names is None:
        changes["label_names"] = ("background",) + tuple(f"class_{i}" for i in range(1, len(label_values)))
    if image_dims == 3 and cfg.target_spacing is None:
        changes["target_spacing"] = median_spacing(
            [str(geometry_source(as_source(p[IMAGE]))) for p in train_pairs], cfg.orientation
        )
        logger.info("target spacing (median of the training set): %s", changes["target_spacing"])
    return dataclasses.replace(cfg, **changes)


def _image_channels(image: str, image_dims: int) -> int:
    """Channels of one image file: the last axis of a 4D volume or an RGB image, else 1."""
    first = load_image(image)
    return int(first.shape[-1]) if np.asarray(first).ndim > image_dims else 1


def resolve_channels(cfg: DataConfig, train_pairs: Sequence[dict]) -> dict:
    """``in_channels`` and ``channel_names`` (those left ``None``) from the training cases.

    A case of several files (an ``image`` list) has one channel per file, and every case must have as many; a single
    file has the channels of its last axis (4D volume, RGB). Names come from ``data.channel_names``, else the
    ``channel_names``/``modality`` of the dataset's ``dataset.json`` (or datalist), else ``channel_0, ...`` for files.

    Raises:
        InputError: cases with different numbers of channel files, naming the first odd case.
    """
    counts = {
        str(item.get("name", i)): len(item[IMAGE]) if isinstance(item[IMAGE], (list, tuple)) else None
        for i, item in enumerate(train_pairs)
    }
    separate = any(c is not None for c in counts.values())
    if separate:
        first = next(iter(counts.values()))
        odd = next(((name, c) for name, c in counts.items() if c != first), None)
        if odd is not None:
            item = next(p for p in train_pairs if str(p.get("name")) == odd[0])
            files = ", ".join(Path(f).name for f in source_files(as_source(item[IMAGE])))
            raise InputError(
                f"{cfg.datalist or cfg.data_dir}: case {odd[0]} has {odd[1] or 1} image file(s) ({files}) but "
                f"{next(iter(counts))} has {first or 1}; every case needs the same channels"
            )
        count = int(first)
    else:
        count = cfg.in_channels or _image_channels(str(train_pairs[0][IMAGE]), cfg.image_dims)
    if cfg.in_channels is not None and cfg.in_channels != count and (separate or cfg.channel_names is not None):
        raise ConfigError(f"data.in_channels is {cfg.in_channels}, but the training cases have {count} channel files")
    changes: dict = {}
    if cfg.in_channels is None:
        changes["in_channels"] = count
    declared = dataset_channel_names(cfg.datalist or cfg.data_dir) if cfg.channel_names is None else None
    if declared is not None and not separate and len(declared) != count:
        logger.warning(
            "%s: dataset.json names %d channel(s) %s, but the images have %d; the names are not used",
            cfg.datalist or cfg.data_dir,
            len(declared),
            list(declared),
            count,
        )
        declared = None
    if declared is not None and not separate and count == 1:
        declared = None  # a single-channel dataset (nnU-Net's {"0": "CT"}) keeps its old configuration
    names = resolve_channel_names(count, cfg.channel_names, declared, separate)
    if names is not None and names != cfg.channel_names:
        changes["channel_names"] = names
    if count > 1 or names:
        logger.info("%d input channel(s)%s", count, f": {', '.join(names)}" if names else "")
    return changes


def _resolve_slicing(cfg: DataConfig, first_image: str) -> DataConfig:
    """A 2D network on volumes slices them across ``slice_axis`` (axial, 2, unless set); 2D images take no slicing."""
    volumes = spatial_dims_of(first_image) == 3
    if cfg.spatial_dims == 2 and volumes and cfg.slice_axis is None:
        logger.info(
            "2D network on volumes: slices across axis 2 (%s), %d context slice(s) on each side",
            cfg.orientation or "as stored",
            cfg.context_slices,
        )
        return dataclasses.replace(cfg, slice_axis=2)
    if not volumes and (cfg.slice_axis is not None or cfg.context_slices):
        raise ConfigError(f"{first_image}: slice_axis and context_slices need volumes; the training images are 2D")
    if not volumes and cfg.target_spacing and len(cfg.target_spacing) != 2:
        raise ConfigError(
            f"{first_image}: target_spacing must hold 2 values for 2D images, got {list(cfg.target_spacing)}"
        )
    return cfg


def check_pairs(pairs: Sequence[dict]) -> None:
    """Fail early, naming the files, when an image and its mask differ in spatial shape or in their voxel-to-world
    mapping (beyond :data:`GRID_TOLERANCE` of the smallest voxel size).

    Reads headers only (no pixel data), so it is cheap even for large volumes.
    """
    problems = []
    for item in pairs:
        label = read_geometry(item[LABEL])
        for index, path in enumerate(source_files(as_source(item[IMAGE]))):
            image = read_geometry(path)
            what = f"its mask {item[LABEL]}" if not index else f"the mask {item[LABEL]} of its channel 0"
            if tuple(image.shape) != tuple(label.shape):
                problems.append(f"{path} is {tuple(image.shape)} but {what} is {tuple(label.shape)}")
                break
            a, b = np.asarray(image.affine_ras, dtype=float), np.asarray(label.affine_ras, dtype=float)
            tolerance = GRID_TOLERANCE * float(min(image.spacing))
            if np.abs(a - b).max() > tolerance:
                problems.append(
                    f"{path} and {what} lie on different grids (voxel-to-world matrices "
                    f"differ by up to {np.abs(a - b).max():.3g} mm; spacing {_rounded(image.spacing)} vs "
                    f"{_rounded(label.spacing)}, origin {_rounded(image.origin)} vs {_rounded(label.origin)})"
                )
                break
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"image/mask mismatch: {problems[0]}{more}")


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]
