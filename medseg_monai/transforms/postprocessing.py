"""Label-map post-processing chosen by :class:`~medseg_monai.config.InferConfig`: ``(1, *spatial)`` in and out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.transforms import FillHoles, KeepLargestConnectedComponent
from skimage.morphology import remove_small_objects

from medseg_monai.errors import ConfigError

__all__ = ["RemoveSmallComponents", "build_postprocessing"]


class RemoveSmallComponents:
    """Set connected components of ``labels`` smaller than ``min_size`` voxels to background.

    Components are taken per class with full connectivity (the neighbourhood
    ``KeepLargestConnectedComponent`` uses), so a speck of one class touching another class still counts
    as a speck: ``skimage.morphology.remove_small_objects`` on each class's mask. Not MONAI's
    ``RemoveSmallObjects``: on a multi-class label map it takes all voxels of one value as a single object.
    """

    def __init__(self, labels: Sequence[int], min_size: int) -> None:
        if min_size < 1:
            raise ConfigError(f"min_size must be >= 1, got {min_size}")
        self.labels = tuple(int(v) for v in labels)
        self.min_size = int(min_size)

    def __call__(self, label_map: torch.Tensor) -> torch.Tensor:
        """``(1, *spatial)`` integer label map -> the same map with small components set to 0."""
        values = np.asarray(label_map.detach().cpu())
        out = values.copy()
        for value in self.labels:
            mask = values[0] == value
            if mask.any():
                kept = remove_small_objects(mask, max_size=self.min_size - 1, connectivity=mask.ndim)
                out[0][mask & ~kept] = 0
        return torch.as_tensor(out, dtype=label_map.dtype)


def build_postprocessing(
    num_classes: int, *, min_component_size: int = 0, keep_largest_component: bool = False, fill_holes: bool = False
) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The steps asked for, in order: small components, largest component, holes (every foreground class)."""
    foreground = list(range(1, num_classes))
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if min_component_size > 0:
        steps.append(RemoveSmallComponents(foreground, min_component_size))
    if keep_largest_component:
        steps.append(KeepLargestConnectedComponent(applied_labels=foreground, is_onehot=False, independent=True))
    if fill_holes:
        steps.append(FillHoles(applied_labels=foreground))
    return steps
