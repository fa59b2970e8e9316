"""A 2D network applied to windows of a volume a few slices deep (2D and 2.5D inference on volumes)."""

from __future__ import annotations

import torch

__all__ = ["SliceWindowNetwork"]


class SliceWindowNetwork(torch.nn.Module):
    """Run a 2D network on every slice of 3D windows: ``(N, C, *win) -> (N, K, *win)``.

    The window's slices across ``slice_axis`` (a spatial index, 0-2) go through ``network`` as one
    batch of ``(N * S, C, a, b)`` images, ``a, b`` the in-plane axes in order; channels already hold
    each slice's context (:func:`~medseg_monai.data.stack_context`). Deep-supervision outputs give
    their first head. The 2D batch is laid out in ``memory_format``.
    """

    def __init__(
        self, network: torch.nn.Module, slice_axis: int, memory_format: torch.memory_format = torch.contiguous_format
    ):
        super().__init__()
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis!r}")
        self.network = network
        self.slice_axis = slice_axis
        self.memory_format = memory_format

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if windows.ndim != 5:
            raise ValueError(f"expected windows (N, C, *3 spatial), got shape {tuple(windows.shape)}")
        dim = self.slice_axis + 2
        slices = windows.movedim(dim, 1)  # (N, S, C, a, b)
        n, s = slices.shape[:2]
        batch = slices.reshape(n * s, *slices.shape[2:]).contiguous(memory_format=self.memory_format)
        out = self.network(batch)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.reshape(n, s, *out.shape[1:]).movedim(1, dim)
