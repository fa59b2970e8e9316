"""Class scores back to the source grid by linear interpolation, one slab at a time (``infer.inversion="linear"``).

The default inversion takes the argmax in the network grid and maps the ``uint8`` labels back
nearest-neighbour. MONAI's recipes instead resample the float probabilities to the source grid
(``Invertd``, bilinear) and take the argmax there, which gives smoother boundaries where the source
is finer than the network grid. :class:`SlabScoreInverter` does the latter without holding a float
map of the whole image: each blended slab from the sliding window is interpolated along the other
axes at once, and source planes along the slab axis are finished as soon as the two network planes
they lie between have arrived. Axis-aligned grids only (a reorientation and a spacing change); the
predictor falls back to the label inversion for oblique ones. Asked to, it keeps the interpolated
probabilities and their entropy too (:class:`~medseg_monai.engines.maps.MapRequest`), so the maps and the
labels come from the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data.utils import to_affine_nd

from medseg_monai.engines.maps import MapRequest, entropy_nats, store_probabilities
from medseg_monai.engines.resampling import axis_map, linear_along, source_index_map
from medseg_monai.engines.stitching import argmax_classes

__all__ = ["SlabScoreInverter"]


class SlabScoreInverter:
    """A stitching sink that writes source-grid labels from blended network-grid scores.

    Args:
        grid_affine, source_affine: index-to-world matrices of the network grid and the source.
        source_shape: spatial shape of the source.
        grid_shape: spatial shape of the network grid.
        slab_axis: the grid axis the sliding window emits slabs along.
        probabilities: ``True`` when the blocks are probabilities (flip TTA), ``False`` for logits
            (a softmax is taken first, as the recipes interpolate probabilities).
        box: optional box (grid slices) outside which every position is background.
        request: source-grid maps to keep besides the labels (:meth:`maps`); ``num_classes`` sizes them.

    Raises:
        ValueError: the grids are not axis-aligned (use the label inversion).
    """

    def __init__(self, grid_affine: np.ndarray, source_affine: np.ndarray, source_shape: Sequence[int],
                 grid_shape: Sequence[int], slab_axis: int, probabilities: bool, box: Sequence[slice] | None = None,
                 request: MapRequest | None = None, num_classes: int = 0):
        nd = len(source_shape)
        axes = axis_map(source_index_map(to_affine_nd(nd, grid_affine), to_affine_nd(nd, source_affine)))
        if axes is None:
            raise ValueError("linear inversion needs axis-aligned grids; this source is oblique to the network grid")
        self.source_shape = tuple(int(s) for s in source_shape)
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.slab_axis = slab_axis
        self.probabilities = probabilities
        self.box = tuple(box) if box is not None else None
        self.by_grid_axis = {a: (j, scale, shift) for j, (a, scale, shift) in enumerate(axes)}
        self.others = [a for a in range(nd) if a != slab_axis]
        j_slab, scale, shift = self.by_grid_axis[slab_axis]
        n = self.grid_shape[slab_axis]
        pos = np.clip(np.arange(self.source_shape[j_slab]) * scale + shift, 0, n - 1)
        self.low = np.floor(pos).astype(np.int64)
        self.high = np.minimum(self.low + 1, n - 1)
        self.frac = (pos - self.low).astype(np.float32)
        self.done = np.zeros(len(pos), dtype=bool)
        # labels with the source axes in the order [slab, *others] of the grid; transposed at the end
        self.order = [j_slab] + [self.by_grid_axis[a][0] for a in self.others]
        self.labels = np.zeros([self.source_shape[j] for j in self.order], dtype=np.uint8)
        self.request = request or MapRequest()
        dtype = np.float32 if self.request.probabilities == "float32" else np.uint8
        self.probs = np.zeros((num_classes, *self.labels.shape), dtype) if self.request.probabilities else None
        self.entropy = np.zeros(self.labels.shape, np.float32) if self.request.entropy else None
        self.previous: np.ndarray | None = None  # the last grid plane of the previous slab, interpolated in-plane

    def __call__(self, start: int, stop: int, block: torch.Tensor) -> None:
        scores = block.float()
        if not self.probabilities:
            scores = torch.softmax(scores, dim=0)
        if self.box is not None:
            scores = self._background_outside_box(start, stop, scores)
        planes = scores.cpu().numpy()
        for k, a in enumerate(self.others):  # in-plane: to the source's resolution at once
            j, scale, shift = self.by_grid_axis[a]
            planes = linear_along(planes, k + 2, self.source_shape[j], scale, shift)
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
            self.labels[index] = argmax_classes(torch.from_numpy(values)).numpy()
            if self.probs is not None:
                self.probs[:, index] = store_probabilities(values, self.request.probabilities)
            if self.entropy is not None:
                self.entropy[index] = entropy_nats(values)
            self.done[index] = True
        self.previous = planes[:, -1:]

    def _background_outside_box(self, start: int, stop: int, scores: torch.Tensor) -> torch.Tensor:
        inside = torch.zeros(scores.shape[1:], dtype=torch.bool)
        box_slab = self.box[self.slab_axis]
        lo, hi = max(box_slab.start or 0, start) - start, min(box_slab.stop or self.grid_shape[self.slab_axis], stop) - start
        if hi > lo:
            inside[(slice(lo, hi), *(self.box[a] for a in self.others))] = True
        scores = scores.clone()
        scores[:, ~inside] = 0.0
        scores[0][~inside] = 1.0
        return scores

    def result(self) -> np.ndarray:
        """The class-index map ``(*source_shape)`` (``uint8``)."""
        if not self.done.all():
            raise RuntimeError(f"linear inversion finished {int(self.done.sum())} of {self.done.size} source planes")
        return np.ascontiguousarray(self.labels.transpose(np.argsort(self.order)))

    def maps(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The kept ``(K, *source_shape)`` probabilities and ``(*source_shape)`` entropy (``None`` when not asked for)."""
        back = np.argsort(self.order)
        probs = np.ascontiguousarray(self.probs.transpose(0, *(back + 1))) if self.probs is not None else None
        entropy = np.ascontiguousarray(self.entropy.transpose(back)) if self.entropy is not None else None
        return probs, entropy
