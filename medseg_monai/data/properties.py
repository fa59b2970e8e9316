"""The data-dependent settings of a run, resolved in one place before training.

:func:`resolve_data_config` fills every ``None`` field of :class:`~medseg_monai.config.DataConfig` that
depends on the data: 2D or 3D (from the images' format), the patch size (its default for that), input
channels, label values and names, and the target spacing. ``medseg train``, the Python API and the
bundles all train through :func:`medseg_monai.engines.train`, which calls it, so the same folder gives
the same configuration whichever way it is trained.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg_monai.config import DataConfig
from medseg_monai.errors import InputError
from medseg_monai.io import load_image, read_geometry, spatial_dims_of
from medseg_monai.keys import IMAGE, LABEL

__all__ = ["check_pairs", "collect_label_values", "median_spacing", "resolve_data_config"]

logger = logging.getLogger(__name__)


def collect_label_values(label_paths: Sequence[str], spatial_dims: int) -> tuple[int, ...]:
    """Sorted union of the integer values found in the masks (background 0 always included).

    Masks stored with channels (e.g. RGB PNG) are read from their first channel.

    Raises:
        ValueError: a mask holds non-integer values, naming the file.
    """
    values: set[int] = {0}
    for path in label_paths:
        array = np.asarray(load_image(path))
        if array.ndim > spatial_dims:
            array = array[..., 0]
        unique = np.unique(array)
        if not np.all(np.equal(np.mod(unique, 1), 0)):
            raise InputError(f"{path}: mask has non-integer values, e.g. {unique[np.mod(unique, 1) != 0][:3].tolist()}")
        values.update(int(v) for v in unique)
    return tuple(sorted(values))


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
    ``patch_size``), ``in_channels`` from the first image, ``label_values`` from all training masks,
    ``label_names``, and for volumes ``target_spacing`` as the median spacing of the training images.
    """
    if not train_pairs:
        raise InputError("no training cases to resolve the data configuration from")
    if cfg.spatial_dims is None:
        cfg = dataclasses.replace(cfg, spatial_dims=spatial_dims_of(train_pairs[0][IMAGE]))
        logger.info("%dD data (from the format of %s)", cfg.spatial_dims, Path(train_pairs[0][IMAGE]).name)
    changes: dict = {}
    if cfg.in_channels is None:
        first = load_image(train_pairs[0][IMAGE])
        spatial = np.asarray(first).ndim
        channels = first.shape[-1] if spatial > cfg.spatial_dims else 1
        changes["in_channels"] = int(channels)
    label_values = cfg.label_values
    if label_values is None:
        label_values = collect_label_values([p[LABEL] for p in train_pairs], cfg.spatial_dims)
        if len(label_values) < 2:
            raise InputError(f"training masks of {cfg.data_dir or 'the datalist'} hold only background")
        changes["label_values"] = label_values
        logger.info("label values found in the training masks: %s", list(label_values))
    if cfg.label_names is None:
        changes["label_names"] = ("background",) + tuple(f"class_{i}" for i in range(1, len(label_values)))
    if cfg.spatial_dims == 3 and cfg.target_spacing is None:
        changes["target_spacing"] = median_spacing([p[IMAGE] for p in train_pairs], cfg.orientation)
        logger.info("target spacing (median of the training set): %s", changes["target_spacing"])
    return dataclasses.replace(cfg, **changes)


def check_pairs(pairs: Sequence[dict]) -> None:
    """Fail early, naming the files, when an image and its mask differ in spatial shape.

    Reads headers only (no pixel data), so it is cheap even for large volumes.
    """
    problems = []
    for item in pairs:
        image_shape = tuple(read_geometry(item[IMAGE]).shape)
        label_shape = tuple(read_geometry(item[LABEL]).shape)
        if image_shape != label_shape:
            problems.append(f"{item[IMAGE]} is {image_shape} but its mask {item[LABEL]} is {label_shape}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"image/mask size mismatch: {problems[0]}{more}")
