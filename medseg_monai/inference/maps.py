"""Class probability and uncertainty maps in the source grid, kept beside the label map while windows stream by.

What to keep is a :class:`MapRequest`; what comes back is :class:`PredictionMaps`. Probabilities are the
softmax (flip-averaged with ``tta_flips``) of each class, stored ``uint8`` as ``round(255 p)`` or as
``float32``; the uncertainty is the predictive entropy ``-sum_k p_k log p_k`` (nats) of those same
probabilities, so with flips it is the entropy of the mean over the flips. Both are filled slab by slab
from the blended sliding-window output, like the labels: no float map of the whole image is held
unless ``float32`` probabilities are asked for, and then only the one being returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from medseg_monai.config import ProbabilityDtype
from medseg_monai.errors import ConfigError
from medseg_monai.inference.mergers import MergedPrediction, outside_box
from medseg_monai.inference.stitching import argmax_classes
from medseg_monai.transforms.resampling import labels_to_source_grid

__all__ = ["MapRequest", "PredictionMaps", "GridMaps", "entropy_nats", "store_probabilities"]

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class MapRequest:
    """Maps to keep besides the labels: ``probabilities`` in this dtype (``None``: none) and/or the ``entropy``."""

    probabilities: ProbabilityDtype | None = None
    entropy: bool = False

    def __post_init__(self) -> None:
        if self.probabilities not in (None, "uint8", "float32"):
            raise ValueError(f"probabilities must be None, 'uint8' or 'float32', got {self.probabilities!r}")

    @property
    def any(self) -> bool:
        return self.probabilities is not None or self.entropy

    def check_stitching(self, stitching: str, writes_maps: bool) -> None:
        """Maps are filled slab by slab: refuse them for a stitching that does not write them."""
        if self.any and not writes_maps:
            raise ConfigError(f"probability and entropy maps need infer.stitching='slab', got {stitching!r}")


@dataclasses.dataclass
class PredictionMaps:
    """One image's prediction in the source grid (readers' index order).

    ``mask``: ``(*spatial)`` label values; ``probabilities``: ``(K, *spatial)`` per class (``uint8`` 0..255 or
    ``float32``), class ``k`` being ``label_values[k]``; ``entropy``: ``(*spatial)`` ``float32`` nats.
    """

    mask: np.ndarray
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None


def store_probabilities(probs: np.ndarray | torch.Tensor, dtype: ProbabilityDtype) -> np.ndarray:
    """Probabilities ``(K, ...)`` in [0, 1] as stored: ``uint8`` ``round(255 p)``, or ``float32``."""
    probs = probs.numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if dtype == "float32":
        return probs.astype(np.float32, copy=False)
    return np.rint(np.clip(probs, 0.0, 1.0) * 255.0).astype(np.uint8)


def entropy_nats(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Predictive entropy ``-sum_k p_k log p_k`` over the class axis of ``(K, ...)`` probabilities, ``float32``."""
    p = torch.as_tensor(probs, dtype=torch.float32)
    return (-(p * torch.log(p.clamp_min(_TINY))).sum(dim=0)).clamp_min(0.0).numpy()


class GridMaps:
    """A merger keeping labels, and the requested maps, in the network grid (for the label inversion); it
    finishes with the maps taken nearest-neighbour into the source grid, as the labels go back.

    Args:
        grid_shape: spatial shape of the network grid.
        slab_axis: the grid axis the sliding window emits slabs along.
        scores: ``"probabilities"`` when the blocks are probabilities (flip TTA), ``"logits"`` otherwise.
        request: which maps to keep; ``num_classes`` sizes them.
        geometry: ``(grid_affine, source_affine, source_shape)`` of the way back to the source grid.
        box: optional box (grid slices) outside which every position is background with certainty.
    """

    def __init__(
        self,
        grid_shape: Sequence[int],
        slab_axis: int,
        scores: str,
        request: MapRequest,
        num_classes: int,
        geometry: tuple[np.ndarray, np.ndarray, Sequence[int]],
        box: Sequence[slice] | None = None,
    ):
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.slab_axis, self.request, self.box, self.geometry = slab_axis, request, box, geometry
        self.softmax = scores == "logits"
        self.labels = np.zeros(self.grid_shape, dtype=np.uint8)
        dtype = np.float32 if request.probabilities == "float32" else np.uint8
        self.probs = np.zeros((num_classes, *self.grid_shape), dtype=dtype) if request.probabilities else None
        if self.probs is not None:
            self.probs[0] = 1.0 if dtype == np.float32 else 255
        self.entropy = np.zeros(self.grid_shape, dtype=np.float32) if request.entropy else None

    def aggregate(self, start: int, stop: int, blended: torch.Tensor) -> None:
        probs = torch.softmax(blended.float(), dim=0) if self.softmax else blended.float()
        probs = probs.cpu()
        index = [slice(None)] * len(self.grid_shape)
        index[self.slab_axis] = slice(start, stop)
        labels = argmax_classes(probs).numpy()
        self.labels[tuple(index)] = np.moveaxis(labels, 0, self.slab_axis)
        if self.probs is not None:
            self.probs[(slice(None), *index)] = np.moveaxis(
                store_probabilities(probs, self.request.probabilities), 1, self.slab_axis + 1
            )
        if self.entropy is not None:
            self.entropy[tuple(index)] = np.moveaxis(entropy_nats(probs), 0, self.slab_axis)

    def finalize(self) -> MergedPrediction:
        """Network-grid labels, and the maps in the source grid; certain background outside ``box``."""
        if self.box is not None:
            outside = outside_box(self.grid_shape, self.box)
            self.labels[outside] = 0
            if self.probs is not None:
                self.probs[:, outside] = 0
                self.probs[0][outside] = 1.0 if self.probs.dtype == np.float32 else 255
            if self.entropy is not None:
                self.entropy[outside] = 0.0
        back = lambda a: labels_to_source_grid(a, *self.geometry)  # noqa: E731
        probs = np.stack([back(p) for p in self.probs]) if self.probs is not None else None
        entropy = back(self.entropy) if self.entropy is not None else None
        return MergedPrediction(self.labels, on_source_grid=False, probabilities=probs, entropy=entropy)
