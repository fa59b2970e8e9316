"""2D and 2.5D networks on volumes: slices across one axis, neighbouring slices as extra channels.

A volume ``(C, X, Y, Z)`` (reoriented and resampled as for a 3D network) is cut across
``data.slice_axis``; with ``data.context_slices=k`` each slice is fed with the ``k`` slices on either
side, so a 2D network sees ``C * (2k + 1)`` channels, ordered channel-major: for image channel ``c``
the slices ``s - k ... s + k``. At the volume's ends the outermost slice is repeated.

Training draws thin 3D patches ``(C, *patch, 2k + 1)`` (the slice axis in its place) with
``RandCropByPosNegLabeld`` from the volume padded by ``k`` slices, then :class:`SlicesToChannelsd`
turns them into 2D patches ``(C * (2k + 1), *patch)`` with the label of the middle slice.
Validation and inference stack the context of every slice at once (:func:`stack_context`) and run
the 2D network over windows a few slices deep
(:class:`~medseg_monai.networks.SliceWindowNetwork`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import BorderPadd, MapTransform, RandCropByPosNegLabeld, SpatialPadd

from medseg_monai.config import DataConfig
from medseg_monai.keys import IMAGE, LABEL

__all__ = ["ContextChannelsd", "SlicesToChannelsd", "in_plane_axes", "slice_patch_steps", "stack_context"]


def in_plane_axes(slice_axis: int) -> tuple[int, int]:
    """The two spatial axes of a volume that span its slices across ``slice_axis``, in order."""
    first, second = (a for a in range(3) if a != slice_axis)
    return first, second


def stack_context(image: torch.Tensor, slice_axis: int, context: int) -> torch.Tensor:
    """Each slice with its ``context`` neighbours on either side as channels: ``(C, *vol) -> (C * (2k + 1), *vol)``.

    Neighbours beyond the volume's ends repeat its outermost slice.
    """
    if context == 0:
        return image
    dim = slice_axis + 1
    length = image.shape[dim]
    positions = torch.arange(length, device=image.device)
    shifted = [
        image.index_select(dim, (positions + offset).clamp_(0, length - 1)) for offset in range(-context, context + 1)
    ]
    return torch.stack(shifted, dim=1).flatten(0, 1)


class ContextChannelsd(MapTransform):
    """:func:`stack_context` of whole volumes (validation); the metadata stays that of the volume."""

    def __init__(self, keys: KeysCollection, slice_axis: int, context: int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.slice_axis, self.context = slice_axis, context

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            volume = d[key]
            stacked = stack_context(
                volume.as_tensor() if isinstance(volume, MetaTensor) else torch.as_tensor(volume),
                self.slice_axis,
                self.context,
            )
            d[key] = MetaTensor(stacked, meta=dict(volume.meta)) if isinstance(volume, MetaTensor) else stacked
        return d


class SlicesToChannelsd(MapTransform):
    """Thin 3D patches to 2D ones: the image's ``2k + 1`` slices become channels, the label keeps the middle one.

    ``image (C, *patch3d) -> (C * (2k + 1), a, b)``, ``label (1, *patch3d) -> (1, a, b)`` with ``a, b``
    the in-plane axes in order. The 2D patches carry their in-plane spacing as a 2D affine.
    """

    def __init__(self, slice_axis: int, image_key: str = IMAGE, label_key: str = LABEL):
        super().__init__((image_key, label_key), allow_missing_keys=True)
        self.slice_axis, self.image_key, self.label_key = slice_axis, image_key, label_key

    def _flat(self, patch: Any, middle_only: bool) -> MetaTensor:
        tensor = patch.as_tensor() if isinstance(patch, MetaTensor) else torch.as_tensor(patch)
        slices = tensor.movedim(self.slice_axis + 1, 1)  # (C, S, a, b)
        flat = slices[:, slices.shape[1] // 2] if middle_only else slices.flatten(0, 1)
        affine = torch.eye(3, dtype=torch.float64)
        meta: dict[str, Any] = {}
        if isinstance(patch, MetaTensor):
            spacing = torch.linalg.norm(torch.as_tensor(patch.affine, dtype=torch.float64)[:3, :3], dim=0)
            for row, axis in enumerate(in_plane_axes(self.slice_axis)):
                affine[row, row] = spacing[axis]
            meta = {k: v for k, v in patch.meta.items() if k == "filename_or_obj"}
        return MetaTensor(flat.contiguous(), affine=affine, meta=meta)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.image_key in d:
            d[self.image_key] = self._flat(d[self.image_key], middle_only=False)
        if self.label_key in d:
            d[self.label_key] = self._flat(d[self.label_key], middle_only=True)
        return d


def slice_patch_steps(cfg: DataConfig) -> list:
    """Training patches of a 2D network on volumes, after the 3D preprocessing: ``(C * (2k + 1), *patch)``.

    The image is padded by repeating its end slices ``k`` times and the label by background, so that
    every crop of ``2k + 1`` slices is centred on a slice of the volume (the crop's centre is moved
    inside the padded volume; a centre in the padding lands on the first or last real slice).
    """
    if cfg.slice_axis is None:
        raise ValueError("slice_patch_steps needs data.slice_axis")
    k, axis = cfg.context_slices, cfg.slice_axis
    size = list(cfg.patch_size)
    size.insert(axis, 2 * k + 1)
    pos = cfg.foreground_ratio
    steps: list = []
    if k:
        border = [0] * 6
        border[2 * axis] = border[2 * axis + 1] = k
        steps.append(BorderPadd(keys=(IMAGE, LABEL), spatial_border=border, mode=("replicate", "constant")))
    steps += [
        SpatialPadd(keys=(IMAGE, LABEL), spatial_size=size),
        RandCropByPosNegLabeld(
            keys=(IMAGE, LABEL),
            label_key=LABEL,
            spatial_size=size,
            pos=pos if pos > 0 else 0.0,
            neg=1.0 - pos if pos < 1 else 0.0,
            num_samples=cfg.samples_per_image,
            image_key=None,
        ),
        SlicesToChannelsd(axis),
    ]
    return steps
