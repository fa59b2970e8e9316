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

from medseg_monai.config import RunConfig
from medseg_monai.inference.stitching import window_extent
from medseg_monai.transforms.foreground import Foreground, find_foreground, foreground_mode, map_foreground
from medseg_monai.transforms.resampling import resample_extent, spacing_plan

__all__ = ["prepare_windows_only"]


def prepare_windows_only(
    image: MetaTensor,
    config: RunConfig,
    pixdim: Sequence[float],
    window: Callable[[Sequence[int]], Sequence[int]],
    normalise: Callable[[MetaTensor], MetaTensor],
) -> tuple[MetaTensor, Foreground] | None:
    """The normalised image ``(C, *grid)`` in the network grid of ``Spacing(pixdim)`` and its foreground there.

    Args:
        image: ``(C, *spatial)`` volume in the source grid (oriented), raw intensities.
        config: the run's settings (``infer.windows_only``, ``foreground_crop``, ``crop_margin_mm``, overlap, intensity).
        pixdim: the network grid's spacing.
        window: the sliding window's size for a grid of a given shape.
        normalise: the intensity normalisation of a ``(C, *part)`` image.

    Returns:
        ``None`` when it does not apply or there is nothing to gain: windows-only off, a normalisation from image
        statistics (only the CT window acts voxel by voxel), 2D or slice-wise networks, no foreground or nearly
        all of it, a grid that is the source's or not a per-axis scaling of it; the caller then prepares the
        whole image.
    """
    infer, data = config.infer, config.data
    if not (
        infer.windows_only and data.resolved_intensity == "ct" and data.image_dims == 3 and data.slice_axis is None
    ):
        return None
    plan = spacing_plan(image, pixdim)
    if plan.axes is None or plan.identity:
        return None
    raw = image.as_tensor().detach().cpu().numpy()
    mode = foreground_mode(infer.foreground_crop, data.resolved_intensity, raw)
    spatial = raw.shape[1:]
    affine = np.asarray(image.affine, dtype=np.float64)[: len(spatial), : len(spatial)]
    spacing = np.sqrt((affine**2).sum(axis=0))
    region = find_foreground(raw, mode, infer.crop_margin_mm / spacing, window=(1,) * len(spatial))
    if region is None:
        return None
    roi = tuple(int(r) for r in window(plan.shape))
    grid_region = map_foreground(region, [plan.positions(j, spatial[j]) for j in range(len(spatial))], roi)
    if grid_region is None:
        return None
    extent = window_extent(plan.shape, roi, config.window_overlap, grid_region.slices)
    meta = plan.meta(image)
    normalised = normalise(MetaTensor(resample_extent(image.as_tensor(), plan, extent), meta=meta))
    out = torch.zeros((normalised.shape[0], *plan.shape), dtype=normalised.dtype)
    out[(slice(None), *extent)] = normalised.as_tensor()
    return MetaTensor(out, meta=meta), grid_region
