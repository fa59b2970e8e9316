"""The two ways of stitching windows into an image's prediction, behind one small interface.

- :class:`SlabStitching` (``infer.stitching="slab"``, the default) blends windows one slab at a time into a
  merger (:mod:`~medseg_monai.inference.mergers`): bounded memory, probability and entropy maps, images
  prepared apart from the network run (so a batch reads the next case meanwhile).
- :class:`FullImageStitching` (``"full"``) is MONAI's ``SlidingWindowInferer`` over the whole image, read by
  the MONAI chain and inverted with ``Invertd``: a float ``classes x image`` buffer, for comparison.

Callers ask the capabilities (:attr:`Stitching.writes_maps`, :attr:`Stitching.prepares_ahead`) instead of
testing the setting's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import Compose, Invertd

from medseg_monai.data.channels import Source, loader_input
from medseg_monai.inference.mergers import GridLabels, GridProbabilities
from medseg_monai.inference.plan import InferencePlan
from medseg_monai.inference.stitching import SlabMerger, slab_axis, sliding_window_stitch
from medseg_monai.inference.windows import WindowForward, flip_averaged_probabilities, network_input
from medseg_monai.keys import IMAGE, PRED
from medseg_monai.networks.precision import autocast
from medseg_monai.transforms.foreground import Foreground

__all__ = ["FullImageStitching", "SlabStitching", "Stitching", "stitching_for"]

#: ``(1, *spatial)`` labels -> post-processed labels of the same shape
Postprocess = Callable[[torch.Tensor], torch.Tensor]


class Stitching(Protocol):
    """How the windows of one preprocessed image become its prediction."""

    name: str
    #: probability and entropy maps can be written with the mask
    writes_maps: bool
    #: images are prepared (read, resampled) apart from the network run: a batch may read ahead
    prepares_ahead: bool

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, C_in, *spatial) -> (B, K, *spatial)``."""

    def labels(self, image: torch.Tensor, foreground: Foreground | None = None) -> torch.Tensor:
        """Class indices ``(C_in, *spatial) -> (1, *spatial)`` on the CPU, before post-processing."""


class SlabStitching:
    """Windows blended a slab at a time (:func:`~medseg_monai.inference.stitching.sliding_window_stitch`)."""

    name = "slab"
    writes_maps = True
    prepares_ahead = True

    def __init__(self, plan: InferencePlan, forward: WindowForward, num_classes: int):
        self.plan, self.forward, self.num_classes = plan, forward, num_classes

    def slab_axis(self, spatial: Sequence[int]) -> int:
        """The axis slabs are emitted along for an image of ``spatial`` shape (network grid)."""
        roi = self.plan.window_size(spatial)
        return slab_axis([max(int(s), r) for s, r in zip(spatial, roi)], roi)

    def run(self, image: torch.Tensor, merger: SlabMerger, foreground: Foreground | None = None) -> None:
        """Hand the blended slabs of ``image`` ``(C_in, *spatial)`` to ``merger``; with a ``foreground``, only
        the windows covering its box that hold foreground run."""
        plan, spatial = self.plan, image.shape[1:]
        sliding_window_stitch(
            network_input(image, plan),
            self.forward,
            merger,
            plan.window_size(spatial),
            overlap=plan.overlap,
            sw_batch_size=plan.sw_batch_size,
            mode=plan.blend_mode,
            device=plan.device,
            stitch_device=plan.stitch_device,
            axis=self.slab_axis(spatial),
            region=None if foreground is None else foreground.slices,
            foreground=None if foreground is None else torch.from_numpy(foreground.mask),
            logits=plan.window_scores == "logits",
        )

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for image in images:
            spatial = image.shape[1:]
            merger = GridProbabilities(spatial, self.slab_axis(spatial), self.plan.window_scores)
            self.run(image, merger)
            outputs.append(merger.finalize())
        return torch.stack(outputs)

    def labels(self, image: torch.Tensor, foreground: Foreground | None = None) -> torch.Tensor:
        spatial = tuple(int(s) for s in image.shape[1:])
        box = None if foreground is None else foreground.slices
        merger = GridLabels(spatial, self.slab_axis(spatial), self.num_classes, box)
        self.run(image, merger, foreground)
        return merger.finalize()


class FullImageStitching:
    """MONAI's ``SlidingWindowInferer`` over the whole image (the flips of TTA applied to the whole image)."""

    name = "full"
    writes_maps = False
    prepares_ahead = False

    def __init__(self, plan: InferencePlan, forward: WindowForward, transforms: Compose):
        self.plan, self.forward, self.transforms = plan, forward, transforms
        self.inferer = SlidingWindowInferer(
            roi_size=plan.window_size(),
            sw_batch_size=plan.sw_batch_size,
            overlap=plan.overlap,
            mode=plan.blend_mode,
            sw_device=plan.device,
            device=plan.stitch_device,
        )
        self.invert = Invertd(keys=PRED, transform=transforms, orig_keys=IMAGE, nearest_interp=True, to_tensor=True)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        plan = self.plan
        images = torch.stack([network_input(image, plan) for image in images.to(plan.device)])
        run = lambda x: self.inferer(x, self.forward.window_network)  # noqa: E731
        with autocast(plan.device, plan.dtype):
            return flip_averaged_probabilities(run, images, plan.flips)

    def labels(self, image: torch.Tensor, foreground: Foreground | None = None) -> torch.Tensor:
        """Class indices of the whole image (``foreground`` is not used: every window runs)."""
        return self.probabilities(image[None])[0].argmax(dim=0, keepdim=True).cpu()

    def source_classes(self, source: Source, postprocess: Postprocess) -> np.ndarray:
        """Read ``source`` with the MONAI chain, predict, post-process and invert: classes in the source grid."""
        data = self.transforms({IMAGE: loader_input(source)})
        image = data[IMAGE]
        labels = postprocess(self.labels(image))
        meta, operations = dict(image.meta), list(image.applied_operations)
        data[PRED] = MetaTensor(labels.to(torch.float32), meta=meta, applied_operations=operations)
        inverted = self.invert(data)[PRED] if image.applied_operations else data[PRED]
        return torch.as_tensor(inverted).round().to(torch.int64)[0].numpy()


def stitching_for(
    plan: InferencePlan, forward: WindowForward, num_classes: int, transforms: Compose
) -> SlabStitching | FullImageStitching:
    """The stitching the plan names."""
    if plan.stitching == "full":
        return FullImageStitching(plan, forward, transforms)
    return SlabStitching(plan, forward, num_classes)
