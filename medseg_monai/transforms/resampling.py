"""Memory-lean resampling between a source grid and the network grid, driven by affines.

MONAI's ``Spacingd`` resamples with ``grid_sample`` in float64 over a dense ``(*out, 3)`` grid, and
``Invertd`` does the same on the way back: for a 512x512x400 CT that is several GiB. Both steps of the
inference chain only ever scale axes (``Orientationd`` permutes and flips, ``Spacingd`` keeps the
direction cosines), so they are separable:

- :class:`AxisAlignedSpacingd` replaces ``Spacingd`` for images: the same output affine and shape
  (computed by MONAI's own ``zoom_affine``/``compute_shape_offset``), trilinear with border padding,
  done as one 1D linear pass per axis in float32;
- :func:`labels_to_source_grid` maps a label map back with nearest-neighbour indices per axis
  (``uint8`` all the way), or ``scipy.ndimage.affine_transform`` (order 0) when the mapping is not
  axis-aligned. For the axis-aligned case the per-axis lookup stays: the library resamplers compute every
  output voxel's coordinates and are several times slower (``bench/library_swaps.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import compute_shape_offset, to_affine_nd, zoom_affine
from monai.transforms import MapTransform, Spacingd

__all__ = [
    "AxisAlignedSpacingd",
    "SpacingPlan",
    "axis_map",
    "labels_to_source_grid",
    "lean_spacing",
    "linear_along",
    "linear_at",
    "resample_extent",
    "sample_positions",
    "source_index_map",
    "spacing_plan",
]

logger = logging.getLogger(__name__)

_TOL = 1e-6  # relative tolerance for "zero" off-axis terms and identity checks
_CHUNK_VOXELS = 1 << 22  # output voxels per chunk of a separable resampling pass


def axis_map(xform: np.ndarray) -> list[tuple[int, float, float]] | None:
    """For each output axis ``j`` of ``p = xform @ [i, 1]``: ``(input axis, scale, shift)``; ``None`` if not
    axis-aligned."""
    nd = xform.shape[0] - 1
    linear = xform[:nd, :nd]
    scale = np.abs(linear).max()
    result, used = [], set()
    for j in range(nd):
        column = linear[:, j]
        a = int(np.argmax(np.abs(column)))
        off = np.delete(column, a)
        if abs(column[a]) <= _TOL * scale or (off.size and np.abs(off).max() > _TOL * scale) or a in used:
            return None
        used.add(a)
        result.append((a, float(column[a]), float(xform[a, nd])))
    return result


def linear_along(x: np.ndarray, axis: int, size: int, scale: float, shift: float) -> np.ndarray:
    """Sample ``x`` at ``scale * i + shift`` for ``i < size`` along ``axis``, linear with border clamping."""
    return linear_at(x, axis, sample_positions(size, scale, shift, x.shape[axis]))


def sample_positions(size: int, scale: float, shift: float, n_in: int) -> np.ndarray:
    """Positions ``scale * i + shift`` (``i < size``) clamped to ``[0, n_in - 1]``, ``float64``."""
    return np.clip(np.arange(size, dtype=np.float64) * scale + shift, 0, n_in - 1)


def linear_at(x: np.ndarray, axis: int, pos: np.ndarray) -> np.ndarray:
    """Sample ``x`` along ``axis`` at the positions ``pos`` (within ``[0, x.shape[axis] - 1]``), linearly.

    Done in chunks along another axis so the temporaries stay small (``np.take`` gathers along the
    innermost axis several times faster than ``torch.index_select``).
    """
    n_in, size = x.shape[axis], len(pos)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    frac = (pos - low).astype(x.dtype)
    view = [1] * x.ndim
    view[axis] = size
    frac = frac.reshape(view)
    linear = bool((frac > 0).any())
    out_shape = list(x.shape)
    out_shape[axis] = size
    out = np.empty(out_shape, dtype=x.dtype)
    chunk_axis = next((a for a in range(x.ndim) if a != axis and x.shape[a] > 1), None)
    if chunk_axis is None:
        chunks = [(slice(None),) * x.ndim]
    else:
        per = max(1, _CHUNK_VOXELS // max(1, int(np.prod(out_shape)) // out_shape[chunk_axis]))
        chunks = [
            tuple(slice(i, i + per) if a == chunk_axis else slice(None) for a in range(x.ndim))
            for i in range(0, x.shape[chunk_axis], per)
        ]
    spare = np.empty(0, dtype=x.dtype)  # one buffer for every chunk's upper neighbours: fresh memory costs page faults
    for index in chunks:
        part, dest = x[index], out[index]
        block = dest if dest.flags.c_contiguous else np.empty(dest.shape, dtype=x.dtype)
        np.take(part, low, axis=axis, out=block, mode="clip")  # indices are in range; "clip" writes without buffering
        if linear:
            spare = spare if spare.size >= block.size else np.empty(block.size, dtype=x.dtype)
            upper = spare[: block.size].reshape(block.shape)
            np.take(part, high, axis=axis, out=upper, mode="clip")
            upper -= block
            upper *= frac
            block += upper
        if block is not dest:
            dest[...] = block
    return out


@dataclasses.dataclass(frozen=True)
class SpacingPlan:
    """Where ``Spacing(pixdim)`` puts a channel-first image: the output ``shape`` and index-to-world ``affine``
    (MONAI's), and for each output axis ``j`` its input position ``scale * i + shift`` (``axes``; ``None`` when
    the transform is not a per-axis scaling, or ``identity`` when nothing moves)."""

    shape: tuple[int, ...]
    affine: np.ndarray
    axes: tuple[tuple[float, float], ...] | None
    identity: bool

    def meta(self, img: MetaTensor) -> dict[str, Any]:
        """``img``'s metadata with the output grid's affine."""
        sr = len(self.shape)
        affine = torch.as_tensor(np.asarray(img.affine, dtype=np.float64), dtype=torch.float64).clone()
        affine[:sr, :sr] = torch.as_tensor(self.affine[:sr, :sr])
        affine[:sr, -1] = torch.as_tensor(self.affine[:sr, -1])
        return {**img.meta, "affine": affine}

    def positions(self, axis: int, n_in: int) -> np.ndarray:
        """Input positions (clamped to ``[0, n_in - 1]``) of every output index along ``axis``."""
        scale, shift = self.axes[axis]
        return sample_positions(self.shape[axis], scale, shift, n_in)


def spacing_plan(img: MetaTensor, pixdim: Sequence[float]) -> SpacingPlan:
    """The :class:`SpacingPlan` of ``Spacing(pixdim)`` (``diagonal=False``, ``scale_extent=False``) for ``img``."""
    spatial = tuple(int(s) for s in img.shape[1:])
    sr = len(spatial)
    src = np.asarray(to_affine_nd(sr, np.asarray(img.affine, dtype=np.float64)), dtype=np.float64)
    out_d = np.asarray(pixdim, dtype=np.float64)[:sr]
    dst = zoom_affine(src, out_d, diagonal=False)
    shape, offset = compute_shape_offset(spatial, src, dst, False)
    dst[:sr, -1] = offset[:sr]
    shape = tuple(int(s) for s in shape)
    xform = np.linalg.solve(src, dst)  # output index -> input index
    identity = shape == spatial and bool(np.allclose(xform, np.eye(sr + 1), atol=1e-3))  # MONAI's "unchanged" test
    found = axis_map(xform)
    axes = (
        None
        if found is None or any(a != j for j, (a, _, _) in enumerate(found))
        else tuple((s, t) for _, s, t in found)
    )
    return SpacingPlan(shape, dst, axes, identity)


def lean_spacing(img: MetaTensor, pixdim: Sequence[float]) -> MetaTensor:
    """``Spacing(pixdim)`` of a channel-first ``MetaTensor`` without a dense sampling grid (float32 output).

    Output affine and shape are MONAI's (``diagonal=False``, ``scale_extent=False``); values are trilinear
    with border padding, as ``Spacingd(mode="bilinear")``. Falls back to MONAI when the transform is not
    a per-axis scaling (never the case for ``Spacing`` itself).
    """
    plan = spacing_plan(img, pixdim)
    data = img.as_tensor().to(device="cpu", dtype=torch.float32)
    if plan.identity:
        out = data
    elif plan.axes is None:
        logger.debug("spacing transform is not a per-axis scaling; using MONAI's Spacing")
        return Spacingd("x", pixdim=pixdim, mode="bilinear", dtype=np.float32)({"x": img})["x"]
    else:
        out = resample_extent(data, plan, tuple(slice(0, n) for n in plan.shape))
    return MetaTensor(out.contiguous(), meta=plan.meta(img), applied_operations=list(img.applied_operations))


def resample_extent(data: torch.Tensor, plan: SpacingPlan, extent: Sequence[slice]) -> torch.Tensor:
    """The part ``extent`` (one ``slice`` per output axis) of the per-axis resampling ``plan`` of ``data``
    ``(C, *spatial)``, from only the input it reads: ``(C, *extent's shape)`` float32, equal to that part of
    the whole resampling."""
    spatial = tuple(int(s) for s in data.shape[1:])
    shape = plan.shape
    extent = tuple(slice(*e.indices(n)[:2]) for e, n in zip(extent, shape))
    positions = [plan.positions(j, spatial[j])[extent[j]] for j in range(len(spatial))]
    # the input that the positions read; integer offsets keep their fractions exact
    lows = [int(np.floor(p.min())) if p.size else 0 for p in positions]
    highs = [min(int(np.floor(p.max())) + 2, n) if p.size else 0 for p, n in zip(positions, spatial)]
    array = data.to(device="cpu", dtype=torch.float32).numpy()[
        (slice(None), *(slice(lo, hi) for lo, hi in zip(lows, highs)))
    ]
    # shrink first so the intermediates stay small (the whole image's order, so every extent's values are the same)
    for j in sorted(range(len(spatial)), key=lambda j: shape[j] / spatial[j]):
        array = linear_at(array, j + 1, positions[j] - lows[j])
    return torch.from_numpy(np.ascontiguousarray(array))


class AxisAlignedSpacingd(MapTransform):
    """Drop-in for an image-only ``Spacingd(pixdim, mode="bilinear")`` in inference (see :func:`lean_spacing`).

    The result carries MONAI's output affine, which is all :func:`labels_to_source_grid` needs to map
    predictions back; it does not record an invertible operation for ``Invertd``.
    """

    def __init__(self, keys: Any, pixdim: Sequence[float], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pixdim = tuple(float(p) for p in pixdim)

    @classmethod
    def replaces(cls, step: Any) -> AxisAlignedSpacingd | None:
        """An equivalent lean step for a default-option bilinear ``Spacingd``, else ``None``."""
        if not isinstance(step, Spacingd):
            return None
        sp = step.spacing_transform
        defaults = (
            not sp.diagonal
            and not sp.recompute_affine
            and np.isnan(sp.min_pixdim).all()
            and np.isnan(sp.max_pixdim).all()
            and all(str(getattr(m, "value", m)) == "bilinear" for m in step.mode)
            and all(str(getattr(p, "value", p)) == "border" for p in step.padding_mode)
            and all(a in (False, None) for a in step.align_corners)
            and not any(step.scale_extent)
        )
        return cls(step.keys, tuple(sp.pixdim), step.allow_missing_keys) if defaults else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = lean_spacing(d[key], self.pixdim)
        return d


def source_index_map(grid_affine: np.ndarray, source_affine: np.ndarray) -> np.ndarray:
    """``(d+1, d+1)`` matrix taking a source voxel index to the (continuous) index in the network grid."""
    grid_affine, source_affine = np.asarray(grid_affine, np.float64), np.asarray(source_affine, np.float64)
    return np.linalg.solve(grid_affine, source_affine)


def labels_to_source_grid(
    labels: np.ndarray, grid_affine: np.ndarray, source_affine: np.ndarray, source_shape: Sequence[int]
) -> np.ndarray:
    """Nearest-neighbour resampling of a label map from the network grid back to the source grid.

    Args:
        labels: ``(*grid_spatial)`` integer map (kept in its dtype).
        grid_affine, source_affine: index-to-world matrices of both grids (same world space).
        source_shape: spatial shape of the source.

    Returns:
        ``(*source_shape)`` array of ``labels.dtype``; positions outside the grid take the nearest
        border value, as ``Invertd`` with the default ``border`` padding does.
    """
    nd = labels.ndim
    source_shape = tuple(int(s) for s in source_shape)
    if len(source_shape) != nd:
        raise ValueError(f"label map has {nd} dims but the source grid {source_shape} has {len(source_shape)}")
    xform = source_index_map(to_affine_nd(nd, grid_affine), to_affine_nd(nd, source_affine))
    if labels.shape == source_shape and np.allclose(xform, np.eye(nd + 1), atol=1e-4):
        return np.ascontiguousarray(labels)
    axes = axis_map(xform)
    if axes is None:
        return _affine_nearest(labels, xform, source_shape)
    out = labels
    for j, (a, scale, shift) in enumerate(axes):  # gather along grid axis a the positions of source axis j
        idx = np.rint(np.arange(source_shape[j]) * scale + shift).astype(np.int64)
        np.clip(idx, 0, labels.shape[a] - 1, out=idx)
        out = np.take(out, idx, axis=a)
    perm = [a for a, _, _ in axes]  # out's axis a now runs along source axis j with a = perm[j]
    return np.ascontiguousarray(out.transpose(perm))


def _affine_nearest(labels: np.ndarray, xform: np.ndarray, source_shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour lookup of every source voxel through ``xform`` (``scipy.ndimage.affine_transform``,
    order 0, border values outside), in the label map's dtype: no coordinate arrays are held."""
    from scipy.ndimage import affine_transform

    nd = labels.ndim
    return affine_transform(
        labels,
        xform[:nd, :nd],
        offset=xform[:nd, nd],
        output_shape=source_shape,
        output=labels.dtype,
        order=0,
        mode="nearest",
    )
