"""Resample and normalise only the part of the network grid that the sliding window will read.

A CT of 512 x 512 pixels is often half air. :func:`prepare_windows_only` finds the body on the source grid
(after ``Orientationd``), carries its box and mask to the network grid, and resamples and normalises only
the extent of the windows that cover the box (:func:`~medseg_monai.inference.stitching.window_extent`); the
rest of the grid stays 0 and no window reads it. The windows are the whole grid's windows, so the masks do
not move; the values inside the extent equal those of resampling the whole image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from medseg_monai.config import DataConfig
from medseg_monai.inference.plan import InferencePlan
from medseg_monai.inference.stitching import window_extent
from medseg_monai.transforms.foreground import Foreground, find_foreground, foreground_mode, map_foreground
from medseg_monai.transforms.resampling import resample_extent, spacing_plan

__all__ = ["prepare_windows_only"]


def prepare_windows_only(
    image: MetaTensor,
    plan: InferencePlan,
    data: DataConfig,
    pixdim: Sequence[float],
    normalise: Callable[[MetaTensor], MetaTensor],
) -> tuple[MetaTensor, Foreground] | None:
    """The normalised image ``(C, *grid)`` in the network grid of ``Spacing(pixdim)`` and its foreground there.

    Args:
        image: ``(C, *spatial)`` volume in the source grid (oriented), raw intensities.
        plan: the inference plan (``windows_only``, ``foreground_crop``, ``crop_margin_mm``, windows, overlap).
        data: the run's data settings (intensity, dims).
        pixdim: the network grid's spacing.
        normalise: the intensity normalisation of a ``(C, *part)`` image.

    Returns:
        ``None`` when it does not apply or there is nothing to gain: windows-only off, a normalisation from image
        statistics (only the CT window acts voxel by voxel), 2D or slice-wise networks, no foreground or nearly
        all of it, a grid that is the source's or not a per-axis scaling of it; the caller then prepares the
        whole image.
    """
    if not (plan.windows_only and data.resolved_intensity == "ct" and data.image_dims == 3 and data.slice_axis is None):
        return None
    grid = spacing_plan(image, pixdim)
    if grid.axes is None or grid.identity:
        return None
    raw = image.as_tensor().detach().cpu().numpy()
    mode = foreground_mode(plan.foreground_crop, data.resolved_intensity, raw)
    spatial = raw.shape[1:]
    affine = np.asarray(image.affine, dtype=np.float64)[: len(spatial), : len(spatial)]
    spacing = np.sqrt((affine**2).sum(axis=0))
    region = find_foreground(raw, mode, plan.crop_margin_mm / spacing, window=(1,) * len(spatial))
    if region is None:
        return None
    roi = tuple(int(r) for r in plan.window_size(grid.shape))
    grid_region = map_foreground(region, [grid.positions(j, spatial[j]) for j in range(len(spatial))], roi)
    if grid_region is None:
        return None
    extent = window_extent(grid.shape, roi, plan.overlap, grid_region.slices)
    meta = grid.meta(image)
    normalised = normalise(MetaTensor(resample_extent(image.as_tensor(), grid, extent), meta=meta))
    out = torch.zeros((normalised.shape[0], *grid.shape), dtype=normalised.dtype)
    out[(slice(None), *extent)] = normalised.as_tensor()
    return MetaTensor(out, meta=meta), grid_region
