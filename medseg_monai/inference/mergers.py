"""Mergers of the slab sliding window: what becomes of the blended scores, slab by slab.

:func:`~medseg_monai.inference.stitching.sliding_window_stitch` hands each finished slab to a merger's
``aggregate(start, stop, blended)``; ``finalize()`` then returns what the merger built, once every slab
is in (MONAI's ``Merger`` has the same two steps). The mergers:

- :class:`GridLabels`: class indices in the network grid (``uint8``), the usual mask;
- :class:`GridProbabilities`: the float probabilities of the whole network grid;
- :class:`~medseg_monai.inference.maps.GridMaps`: labels and the requested maps in the network grid, taken
  nearest-neighbour into the source grid;
- :class:`~medseg_monai.inference.inversion.SlabScoreInverter`: labels (and maps) interpolated linearly
  into the source grid.

The last two finish as a :class:`MergedPrediction`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from medseg_monai.inference.stitching import SlabMerger, argmax_classes

__all__ = ["GridLabels", "GridProbabilities", "MergedPrediction", "SlabMerger"]


@dataclasses.dataclass(frozen=True)
class MergedPrediction:
    """Class indices before post-processing, on the network grid or already on the source grid, and the maps
    asked for, always on the source grid (``None`` when not asked for)."""

    labels: np.ndarray
    on_source_grid: bool
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None


def outside_box(shape: Sequence[int], box: Sequence[slice]) -> np.ndarray:
    """Boolean ``(*shape)`` mask of the positions outside ``box``."""
    outside = np.ones(tuple(shape), dtype=bool)
    outside[tuple(box)] = False
    return outside


class GridLabels:
    """Class indices of the network grid, ``(1, *spatial)`` on the CPU (``uint8``; ``int64`` above 256 classes).

    With a ``box``, positions outside it are background (no window ran there).
    """

    def __init__(self, spatial: Sequence[int], slab_axis: int, num_classes: int, box: Sequence[slice] | None = None):
        self.dtype = torch.uint8 if num_classes <= 256 else torch.int64
        self.labels = torch.empty((1, *(int(s) for s in spatial)), dtype=self.dtype)
        self.view = self.labels[0].movedim(slab_axis, 0)
        self.box = box

    def aggregate(self, start: int, stop: int, blended: torch.Tensor) -> None:
        self.view[start:stop] = argmax_classes(blended, self.dtype).cpu()

    def finalize(self) -> torch.Tensor:
        if self.box is not None:
            self.labels[0][torch.from_numpy(outside_box(self.labels.shape[1:], self.box))] = 0
        return self.labels


class GridProbabilities:
    """Class probabilities ``(K, *spatial)`` float32 of the network grid (a softmax of logits first)."""

    def __init__(self, spatial: Sequence[int], slab_axis: int, scores: str):
        self.spatial = tuple(int(s) for s in spatial)
        self.slab_axis = slab_axis
        self.softmax = scores == "logits"
        self.probabilities: torch.Tensor | None = None

    def aggregate(self, start: int, stop: int, blended: torch.Tensor) -> None:
        if self.probabilities is None:
            shape = (blended.shape[0], *self.spatial)
            self.probabilities = torch.empty(shape, dtype=torch.float32, device=blended.device)
        view = self.probabilities.movedim(self.slab_axis + 1, 1)
        view[:, start:stop] = torch.softmax(blended, dim=0) if self.softmax else blended

    def finalize(self) -> torch.Tensor:
        if self.probabilities is None:
            raise RuntimeError("no slab reached the merger")
        return self.probabilities
