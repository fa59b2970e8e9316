"""Class scores back to the source grid by linear interpolation, one slab at a time (``infer.inversion="linear"``).

The default inversion takes the argmax in the network grid and maps the ``uint8`` labels back
nearest-neighbour. MONAI's recipes instead resample the float probabilities to the source grid
(``Invertd``, bilinear) and take the argmax there, which gives smoother boundaries where the source
is finer than the network grid. :class:`SlabScoreInverter` does the latter without holding a float
map of the whole image: each blended slab from the sliding window is interpolated along the other
axes at once, and source planes along the slab axis are finished as soon as the two network planes
they lie between have arrived. Axis-aligned grids only (a reorientation and a spacing change); the
predictor falls back to the label inversion for oblique ones. Asked to, it keeps the interpolated
probabilities and their entropy too (:class:`~medseg_monai.inference.maps.MapRequest`), so the maps and the
labels come from the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data.utils import to_affine_nd

from medseg_monai.inference.maps import MapRequest, entropy_nats, store_probabilities
from medseg_monai.inference.mergers import MergedPrediction
from medseg_monai.inference.stitching import argmax_classes
from medseg_monai.transforms.resampling import axis_map, linear_at, sample_positions, source_index_map

__all__ = ["SlabScoreInverter"]


class SlabScoreInverter:
    """A merger that writes source-grid labels (and maps) from blended network-grid scores.

    Args:
        grid_affine, source_affine: index-to-world matrices of the network grid and the source.
        source_shape: spatial shape of the source.
        grid_shape: spatial shape of the network grid.
        slab_axis: the grid axis the sliding window emits slabs along.
        scores: ``"probabilities"`` when the blocks are probabilities (flip TTA), ``"logits"`` otherwise
            (a softmax is taken first, as the recipes interpolate probabilities).
        box: optional box (grid slices) outside which every position is background.
        request: source-grid maps to keep besides the labels (:meth:`finalize`); ``num_classes`` sizes them.

    Raises:
        ValueError: the grids are not axis-aligned (use the label inversion).
    """

    def __init__(
        self,
        grid_affine: np.ndarray,
        source_affine: np.ndarray,
        source_shape: Sequence[int],
        grid_shape: Sequence[int],
        slab_axis: int,
        scores: str,
        box: Sequence[slice] | None = None,
        request: MapRequest | None = None,
        num_classes: int = 0,
    ):
        nd = len(source_shape)
        axes = axis_map(source_index_map(to_affine_nd(nd, grid_affine), to_affine_nd(nd, source_affine)))
        if axes is None:
            raise ValueError("linear inversion needs axis-aligned grids; this source is oblique to the network grid")
        self.source_shape = tuple(int(s) for s in source_shape)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.slab_axis = slab_axis
        self.softmax = scores == "logits"
        self.box = None if box is None else tuple(slice(*b.indices(n)[:2]) for b, n in zip(box, self.grid_shape))
        self.by_grid_axis = {a: (j, scale, shift) for j, (a, scale, shift) in enumerate(axes)}
        self.others = [a for a in range(nd) if a != slab_axis]
        j_slab, scale, shift = self.by_grid_axis[slab_axis]
        n = self.grid_shape[slab_axis]
        pos = sample_positions(self.source_shape[j_slab], scale, shift, n)
        self.low = np.floor(pos).astype(np.int64)
        self.high = np.minimum(self.low + 1, n - 1)
        self.frac = (pos - self.low).astype(np.float32)
        self.done = np.zeros(len(pos), dtype=bool)
        # in-plane, only the part of the grid around the box is interpolated: the rest of the source is background
        self.crop, self.positions, self.targets = zip(*(self._in_plane(a) for a in self.others))
        # the source axes in the order [slab, *others] of the grid, for writing slab by slab
        self.order = [j_slab] + [self.by_grid_axis[a][0] for a in self.others]
        self.request = request or MapRequest()
        self.labels = self._source_array((), np.uint8)
        dtype = np.float32 if self.request.probabilities == "float32" else np.uint8
        self.probs = self._source_array((num_classes,), dtype) if self.request.probabilities else None
        if self.probs is not None:
            self.probs[0] = store_probabilities(np.ones(1, np.float32), self.request.probabilities)[
                0
            ]  # certain background
        self.entropy = self._source_array((), np.float32) if self.request.entropy else None
        self.labels_only = self.probs is None and self.entropy is None
        self.previous: np.ndarray | None = None  # the last grid plane of the previous slab, interpolated in-plane

    def _source_array(self, leading: tuple[int, ...], dtype: type) -> np.ndarray:
        """Zeros ``(*leading, *source axes in [slab, *others] order)`` stored so that the source-order view is
        Fortran-ordered: NIfTI's own layout (nibabel writes it without a copy) and SimpleITK's ``(z, y, x)``."""
        nd = len(self.source_shape)
        storage = np.zeros((*leading, *self.source_shape[::-1]), dtype)
        lead = tuple(range(len(leading)))
        return storage.transpose(*lead, *(len(leading) + nd - 1 - j for j in self.order))

    def _in_plane(self, a: int) -> tuple[slice, np.ndarray, slice]:
        """For in-plane grid axis ``a``: the grid range to interpolate, the source positions in it, and their
        source range.

        A source voxel whose two grid neighbours both lie outside the box is certain background; every other one
        has both neighbours within the box grown by one voxel (where the background begins).
        """
        j, scale, shift = self.by_grid_axis[a]
        n = self.grid_shape[a]
        pos = sample_positions(self.source_shape[j], scale, shift, n)
        if self.box is None:
            return slice(0, n), pos, slice(0, len(pos))
        grown = slice(max(self.box[a].start - 1, 0), min(self.box[a].stop + 1, n))
        low = np.floor(pos)
        needed = np.flatnonzero((low >= grown.start) & (np.minimum(low + 1, n - 1) <= grown.stop - 1))
        if needed.size == 0:
            return grown, pos[:0], slice(0, 0)
        first, last = int(needed[0]), int(needed[-1]) + 1
        return grown, pos[first:last] - grown.start, slice(first, last)

    def aggregate(self, start: int, stop: int, blended: torch.Tensor) -> None:
        scores = blended[(slice(None), slice(None), *self.crop)].float()
        if self.softmax:
            scores = torch.softmax(scores, dim=0)
        if self.box is not None:
            scores = self._background_outside_box(start, stop, scores)
        if self.labels_only:
            # interpolation is linear, so interpolating p_k - p_0 (k >= 1) ranks the classes exactly as interpolating
            # every p_k does, with one channel fewer to interpolate (half the work for two classes)
            scores = scores[1:] - scores[:1]
        planes = scores.cpu().numpy()
        if all(len(p) for p in self.positions):
            for k, positions in enumerate(self.positions):  # in-plane: to the source's resolution at once
                planes = linear_at(planes, k + 2, positions)
        else:
            planes = planes[(slice(None), slice(None), *(slice(0, 0) for _ in self.positions))]
        if self.previous is not None:
            planes = np.concatenate([self.previous, planes], axis=1)
            first = start - 1
        else:
            first = start
        ready = ~self.done & (self.high <= stop - 1) & (self.low >= first)
        if ready.any():
            index = np.flatnonzero(ready)
            low, high = self.low[index] - first, self.high[index] - first
            frac = self.frac[index].reshape(1, -1, *([1] * (planes.ndim - 2)))
            values = planes[:, low] * (1 - frac) + planes[:, high] * frac
            rows = slice(index[0], index[-1] + 1) if index[-1] - index[0] + 1 == index.size else index
            target = (
                rows,
                *self.targets,
            )  # a slice when it can: fancy writes into the Fortran-ordered arrays are slower
            self.labels[target] = (
                labels_from_differences(values)
                if self.labels_only
                else argmax_classes(torch.from_numpy(values)).numpy()
            )
            if self.probs is not None:
                self.probs[(slice(None), *target)] = store_probabilities(values, self.request.probabilities)
            if self.entropy is not None:
                self.entropy[target] = entropy_nats(values)
            self.done[index] = True
        self.previous = planes[:, -1:]

    def _background_outside_box(self, start: int, stop: int, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` of the cropped slab ``[start, stop)`` with certain background outside the box."""
        inside = torch.zeros(scores.shape[1:], dtype=torch.bool)
        box_slab = self.box[self.slab_axis]
        lo, hi = max(box_slab.start, start) - start, min(box_slab.stop, stop) - start
        if hi > lo:
            in_plane = (
                slice(self.box[a].start - c.start, self.box[a].stop - c.start) for a, c in zip(self.others, self.crop)
            )
            inside[(slice(lo, hi), *in_plane)] = True
        scores = scores.clone()
        scores[:, ~inside] = 0.0
        scores[0][~inside] = 1.0
        return scores

    def finalize(self) -> MergedPrediction:
        """Source-grid class indices ``(*source_shape)`` (``uint8``), the kept ``(K, *source_shape)`` probabilities
        and ``(*source_shape)`` entropy; the arrays are Fortran-ordered views (see ``_source_array``)."""
        if not self.done.all():
            raise RuntimeError(f"linear inversion finished {int(self.done.sum())} of {self.done.size} source planes")
        back = np.argsort(self.order)
        probs = self.probs.transpose(0, *(back + 1)) if self.probs is not None else None
        entropy = self.entropy.transpose(back) if self.entropy is not None else None
        return MergedPrediction(self.labels.transpose(back), on_source_grid=True, probabilities=probs, entropy=entropy)


def labels_from_differences(differences: np.ndarray) -> np.ndarray:
    """Class indices (``uint8``) from ``(K - 1, *spatial)`` score differences ``p_k - p_0``, ``k >= 1``.

    The same as ``argmax_classes`` of the scores themselves, ties to the lower class included: class 0
    wins unless some difference is positive.
    """
    if len(differences) == 1:
        return (differences[0] > 0).astype(np.uint8)
    background = np.zeros((1, *differences.shape[1:]), differences.dtype)  # p_0 - p_0
    return argmax_classes(torch.from_numpy(np.concatenate([background, differences]))).numpy()
