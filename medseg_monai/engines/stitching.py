"""Sliding-window inference that stitches one slab at a time.

MONAI's ``sliding_window_inference`` keeps a ``(B, K, *spatial)`` float output plus a count map for the
whole image until the last window is done. Here the windows are visited in order of their start
along one spatial axis (the *slab axis*); once every window starting before position ``s`` has been
added, the blended outputs in front of ``s`` can no longer change, so they are handed to a *sink*
(argmax into a ``uint8`` label map, or a probability buffer) and the accumulator moves on. Only a
``(K, roi_a, *other_spatial)`` accumulator is alive, whatever the image length along the slab axis.

The window grid, zero padding of images smaller than the window and the importance map (``constant``
or ``gaussian`` with ``sigma_scale=0.125``) are those of MONAI, so the blended values equal MONAI's up
to float summation order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.data.utils import compute_importance_map, dense_patch_slices

__all__ = ["Sink", "scan_starts", "slab_axis", "sliding_window_stitch"]

_EMIT_VOXELS = 1 << 23  # blended values handed to the sink per call (32 MiB of float32)

#: ``sink(start, stop, blended)``: ``blended`` is ``(K, stop - start, *other)`` along the slab axis moved first
Sink = Callable[[int, int, torch.Tensor], None]


def scan_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis: ``monai.data.utils.dense_patch_slices`` with the interval MONAI's inferer uses.

    >>> scan_starts(10, 4, 0.5)
    [0, 2, 4, 6]
    """
    if roi >= size:  # one window (the image is padded to the window when smaller)
        return [0]
    interval = max(int(roi * (1 - overlap)), 1)
    return [int(window[0].start) for window in dense_patch_slices((size,), (roi,), (interval,))]


def slab_axis(spatial: Sequence[int], roi: Sequence[int]) -> int:
    """Spatial axis along which the accumulator is smallest: the one with the most windows' worth of length."""
    return max(range(len(spatial)), key=lambda a: (spatial[a] / roi[a], -a))


def sliding_window_stitch(
    image: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    sink: Sink,
    roi_size: Sequence[int],
    *,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    mode: str = "gaussian",
    device: torch.device | str = "cpu",
    stitch_device: torch.device | str = "cpu",
    axis: int | None = None,
) -> int:
    """Run ``forward`` over sliding windows of ``image`` and hand blended slabs to ``sink`` in order.

    Args:
        image: one image ``(C, *spatial)``; it stays where it is, windows are copied to ``device``.
        forward: ``(N, C, *roi) -> (N, K, *roi)`` on ``device`` (logits or probabilities).
        sink: receives ``(start, stop, blended)`` for consecutive, non-overlapping ranges along the slab
            axis covering the whole image, with ``blended`` of shape ``(K, stop - start, *other_spatial)``
            (the slab axis moved to dim 1, other spatial axes in their order) on ``stitch_device``.
        roi_size: window size per spatial axis; images smaller than it are zero-padded as in MONAI.
        overlap, sw_batch_size, mode: as ``monai.inferers.SlidingWindowInferer``.
        device: where ``forward`` runs; ``stitch_device``: where windows are blended.
        axis: slab axis (spatial index); ``None`` picks :func:`slab_axis`.

    Returns:
        The slab axis used.
    """
    spatial = tuple(int(s) for s in image.shape[1:])
    nd = len(spatial)
    roi = tuple(int(r) for r in roi_size)
    if len(roi) != nd:
        raise ValueError(f"roi_size {roi} does not match the image's {nd} spatial dims {spatial}")
    stitch_device = torch.device(stitch_device)
    pads = [max(r - s, 0) for r, s in zip(roi, spatial)]
    if any(pads):  # F.pad wants the last axis first, (before, after) pairs
        pad_arg = [v for p in reversed(pads) for v in (p // 2, p - p // 2)]
        image = F.pad(image, pad_arg, mode="constant", value=0.0)
    padded = tuple(int(s) for s in image.shape[1:])
    axis = slab_axis(padded, roi) if axis is None else axis
    others = [d for d in range(nd) if d != axis]
    starts = [scan_starts(padded[d], roi[d], overlap) for d in range(nd)]
    weight = compute_importance_map(roi, mode=mode, sigma_scale=0.125, device=stitch_device, dtype=torch.float32)
    weight_a = weight.movedim(axis, 0)  # (roi_a, *roi_others)

    # cropping the padding back out: along the slab axis in the emitted ranges, elsewhere per slab
    crop_lo = [p // 2 for p in pads]
    other_crop = tuple(slice(crop_lo[d], crop_lo[d] + spatial[d]) for d in others)
    emitted = 0

    def emit(lo: int, hi: int, acc: torch.Tensor, count: torch.Tensor) -> None:
        nonlocal emitted
        a0, a1 = max(lo, crop_lo[axis]), min(hi, crop_lo[axis] + spatial[axis])
        if a1 <= a0:
            return
        plane = acc[:, 0][(slice(None), *other_crop)].numel()
        step = max(1, _EMIT_VOXELS // max(plane, 1))  # a few planes at a time: small temporaries
        for b0 in range(a0, a1, step):
            b1 = min(b0 + step, a1)
            part = acc[:, b0 - lo : b1 - lo][(slice(None), slice(None), *other_crop)]
            norm = count[b0 - lo : b1 - lo][(slice(None), *other_crop)]
            sink(b0 - crop_lo[axis], b1 - crop_lo[axis], part / norm)
        emitted = a1 - crop_lo[axis]

    roi_a = roi[axis]
    other_shape = [padded[d] for d in others]
    acc: torch.Tensor | None = None
    count = torch.zeros([roi_a, *other_shape], dtype=torch.float32, device=stitch_device)
    window_positions = list(itertools.product(*(starts[d] for d in others)))
    axis_starts = starts[axis]
    for g, lo in enumerate(axis_starts):
        for i in range(0, len(window_positions), sw_batch_size):
            chunk = window_positions[i : i + sw_batch_size]
            index = [_window_index(axis, lo, roi, others, pos) for pos in chunk]
            batch = torch.stack([image[(slice(None), *idx)] for idx in index]).to(device)
            out = forward(batch)
            if isinstance(out, (list, tuple)):
                out = out[0]
            out = out.to(device=stitch_device, dtype=torch.float32).movedim(axis + 2, 2)
            if acc is None:
                acc = torch.zeros([out.shape[1], roi_a, *other_shape], dtype=torch.float32, device=stitch_device)
            for w_out, pos in zip(out, chunk):
                region = tuple(slice(p, p + roi[d]) for p, d in zip(pos, others))
                acc[(slice(None), slice(None), *region)].add_(w_out * weight_a)
                count[(slice(None), *region)].add_(weight_a)
        assert acc is not None
        nxt = axis_starts[g + 1] if g + 1 < len(axis_starts) else padded[axis]
        emit(lo, nxt, acc[:, : nxt - lo], count[: nxt - lo])
        if nxt < padded[axis]:  # shift the still-open part to the front; zero the rest
            keep = lo + roi_a - nxt
            acc[:, :keep] = acc[:, nxt - lo : nxt - lo + keep].clone()
            acc[:, keep:] = 0
            count[:keep] = count[nxt - lo : nxt - lo + keep].clone()
            count[keep:] = 0
    if emitted != spatial[axis]:
        raise RuntimeError(f"sliding window covered {emitted} of {spatial[axis]} positions along axis {axis}")
    return axis


def _window_index(axis: int, start: int, roi: Sequence[int], others: Sequence[int], pos: Sequence[int]) -> tuple[slice, ...]:
    index: list[slice] = [slice(None)] * len(roi)
    index[axis] = slice(start, start + roi[axis])
    for d, p in zip(others, pos):
        index[d] = slice(p, p + roi[d])
    return tuple(index)
