"""The network over windows, as the plan runs it: layout, precision, slices of volumes, and flip TTA.

Test-time augmentation is written once, :func:`flip_averaged_probabilities`: the slab stitching applies it
to each batch of windows, the whole-image stitching to MONAI's ``SlidingWindowInferer`` over the image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from medseg_monai.inference.plan import InferencePlan
from medseg_monai.networks import SliceWindowNetwork
from medseg_monai.networks.precision import autocast
from medseg_monai.transforms.slicing import stack_context

__all__ = ["WindowForward", "first_output", "flip_averaged_probabilities", "network_input"]


def first_output(output: Any) -> torch.Tensor:
    """The first head of a deep-supervision output (a list or tuple), or the output itself."""
    return output[0] if isinstance(output, (list, tuple)) else output


def flip_averaged_probabilities(
    run: Callable[[torch.Tensor], Any], x: torch.Tensor, flips: Sequence[tuple[int, ...]]
) -> torch.Tensor:
    """The softmax of ``run`` averaged over flips of ``x``: ``(N, C, *s) -> (N, K, *s)``, float32.

    Each entry of ``flips`` holds the tensor dims to flip for one pass (``()``: as it is); every pass's
    probabilities are flipped back before they are added.
    """
    total = None
    for axes in flips:
        probs = torch.softmax(first_output(run(torch.flip(x, axes) if axes else x)).float(), dim=1)
        probs = torch.flip(probs, axes) if axes else probs
        total = probs if total is None else total.add_(probs)
    return total / len(flips)


def network_input(image: torch.Tensor, plan: InferencePlan) -> torch.Tensor:
    """``(C, *spatial)`` as the windows see it: a 2.5D network's context slices stacked as channels."""
    if plan.slice_axis is None or not plan.context_slices:
        return image
    return stack_context(image, plan.slice_axis, plan.context_slices)


class WindowForward:
    """What runs on each batch of windows ``(N, C, *window) -> (N, K, *window)``: the plan's
    :attr:`~medseg_monai.inference.plan.InferencePlan.window_scores`, logits or flip-averaged probabilities.

    ``window_network`` is the network itself, or for a 2D network on volumes that network over the slices of
    3D windows (:class:`~medseg_monai.networks.SliceWindowNetwork`). ``seconds`` adds up the time spent in it
    (the network's share of a case is its difference over the case; one thread runs the network).
    """

    def __init__(self, network: torch.nn.Module, plan: InferencePlan):
        self.plan = plan
        self.network = network
        self.window_network: torch.nn.Module = (
            network if plan.slice_axis is None else SliceWindowNetwork(network, plan.slice_axis, plan.memory_format)
        )
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self._scores(x)
        finally:
            self.seconds += time.perf_counter() - start

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        plan = self.plan
        x = x.contiguous(memory_format=plan.window_memory_format)
        with autocast(plan.device, plan.dtype):
            if not plan.tta:
                return first_output(self.window_network(x)).float()
            return flip_averaged_probabilities(self.window_network, x, plan.flips)
