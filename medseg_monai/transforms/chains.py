"""MONAI dictionary-transform chains for training, validation and inference, built from a config.

One preprocessing chain serves 2D slices and 3D volumes; the config decides which steps apply:

    LoadImaged -> EnsureChannelFirstd -> [label: first channel, raw values -> class indices]
    -> (3D) Orientationd -> (3D) Spacingd -> image channels matched -> intensity normalisation

Training appends padding to the patch size, ``RandCropByPosNegLabeld`` and augmentation. Inference
uses the same chain on the image alone, so ``Invertd`` can map a prediction back to the source grid.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import monai.transforms
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    MapLabelValue,
    MapTransform,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)

from medseg_monai.config import DataConfig, InputChecks
from medseg_monai.errors import InputError
from medseg_monai.io import image_loader
from medseg_monai.keys import IMAGE, LABEL
from medseg_monai.transforms.slicing import ContextChannelsd, slice_patch_steps

__all__ = [
    "IntensityWindowd",
    "MapLabelValuesd",
    "MatchChannelsd",
    "StepSpec",
    "build_preprocessing",
    "build_train_transforms",
    "build_val_transforms",
    "build_infer_stages",
    "build_infer_transforms",
    "intensity_steps",
    "spatial_steps",
]


def _source_name(data: Any) -> str:
    if isinstance(data, MetaTensor):
        return str(data.meta.get("filename_or_obj", "<array>"))
    return "<array>"


class MapLabelValuesd(MapTransform):
    """Map raw mask values to class indices (``label_values[i] -> i``) and keep one channel.

    Masks stored as RGB keep their first channel. A value outside ``label_values`` raises
    ``ValueError`` naming the mask file, instead of silently producing an out-of-range class: MONAI's
    ``MapLabelValue`` does the mapping, but it leaves unknown values as they are, so they are checked first.
    """

    def __init__(self, keys: KeysCollection, label_values: Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.label_values = tuple(int(v) for v in label_values)
        self._map = MapLabelValue(
            orig_labels=self.label_values, target_labels=list(range(len(self.label_values))), dtype=torch.float32
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if label.shape[0] > 1:
                label = label[:1]
            plain = label.as_tensor() if isinstance(label, MetaTensor) else torch.as_tensor(label)
            values = torch.round(plain.to(torch.float32))
            known = torch.zeros(values.shape, dtype=torch.bool)
            for value in self.label_values:
                known |= values == value
            if not bool(known.all()):
                unknown = sorted(set(values[~known].unique().to(torch.int64).tolist()))[:8]
                raise InputError(
                    f"{_source_name(label)}: mask values {unknown} are not in label_values {list(self.label_values)}"
                )
            index = self._map(values)
            if isinstance(label, MetaTensor):
                index = MetaTensor(index, meta=label.meta, applied_operations=label.applied_operations)
            d[key] = index
        return d


class MatchChannelsd(MapTransform):
    """Bring an image to ``channels`` channels: gray -> repeated RGB, RGB -> mean gray.

    With ``convert=False`` (channels that are separate images, ``data.channel_names``) another count is an error.
    """

    def __init__(self, keys: KeysCollection, channels: int, allow_missing_keys: bool = False, convert: bool = True):
        super().__init__(keys, allow_missing_keys)
        if channels < 1:
            raise InputError(f"channels must be >= 1, got {channels}")
        self.channels, self.convert = channels, convert

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            have = img.shape[0]
            if have == self.channels:
                continue
            if not self.convert or img.ndim > 3:  # gray <-> RGB is for raster images; a volume's channels are its own
                raise InputError(
                    f"{_source_name(img)}: {have} channel(s), but the model takes {self.channels} separate "
                    "channels (one file each: NAME_0000, NAME_0001, ...)"
                )
            if have == 1:
                d[key] = img.repeat(self.channels, *([1] * (img.ndim - 1)))
            elif self.channels == 1:
                d[key] = img.mean(dim=0, keepdim=True)
            else:
                raise InputError(f"{_source_name(img)}: image has {have} channels, the model expects {self.channels}")
        return d


class IntensityWindowd(MapTransform):
    """Clip to ``[low, high]`` and scale to ``[0, 1]``: ``ScaleIntensityRanged(a_min=low, a_max=high, b_min=0, b_max=1,
    clip=True)`` with the same float32 arithmetic, in one new tensor instead of five (a 512x512x400 CT is 0.4 GB
    each)."""

    def __init__(self, keys: KeysCollection, low: float, high: float, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if not high > low:
            raise ValueError(f"intensity window must have high > low, got ({low}, {high})")
        self.low, self.high = float(low), float(high)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            raw = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
            if not raw.is_floating_point():
                raw = raw.float()
            scaled = torch.sub(raw, self.low).div_(self.high - self.low).clamp_(0.0, 1.0)
            d[key] = (
                MetaTensor(scaled, meta=img.meta, applied_operations=img.applied_operations)
                if isinstance(img, MetaTensor)
                else scaled
            )
        return d


#: a MONAI dictionary transform by its name in ``monai.transforms`` and its arguments (without ``keys``)
StepSpec = tuple[str, dict[str, Any]]
#: MONAI's ``RAS`` axis labels, given explicitly (leaving them out of ``Orientationd`` draws a FutureWarning)
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def intensity_steps(cfg: DataConfig) -> list[StepSpec]:
    """Intensity normalisation of the image as MONAI transforms. ``zscore`` and ``percentile`` work per channel;
    ``minmax`` too when the channels are separate images (``channel_names`` set), else (RGB) over all channels;
    ``ct``'s fixed window applies to each channel."""
    mode = cfg.resolved_intensity
    if mode == "minmax":
        return [("ScaleIntensityd", {"minv": 0.0, "maxv": 1.0, "channel_wise": cfg.channel_names is not None})]
    if mode == "ct":
        low, high = (float(v) for v in cfg.ct_window)
        return [("ScaleIntensityRanged", {"a_min": low, "a_max": high, "b_min": 0.0, "b_max": 1.0, "clip": True})]
    if mode == "zscore":
        return [("NormalizeIntensityd", {"nonzero": True, "channel_wise": True})]
    # percentile: robust to extreme outliers (mixed dtypes, per-image maxima over 1e6)
    percentiles = {"lower": 0.5, "upper": 99.5, "b_min": 0.0, "b_max": 1.0, "clip": True, "channel_wise": True}
    return [("ScaleIntensityRangePercentilesd", percentiles), ("NormalizeIntensityd", {"channel_wise": True})]


def spatial_steps(cfg: DataConfig, has_label: bool = False) -> list[StepSpec]:
    """Orientation and spacing of a volume as MONAI transforms (none for 2D images); labels resampled nearest."""
    if cfg.image_dims != 3:
        return []
    steps: list[StepSpec] = []
    if cfg.orientation:
        steps.append(("Orientationd", {"axcodes": cfg.orientation, "labels": _RAS_LABELS}))
    if cfg.target_spacing:
        modes = ("bilinear", "nearest") if has_label else ("bilinear",)
        steps.append(("Spacingd", {"pixdim": tuple(float(v) for v in cfg.target_spacing), "mode": modes}))
    return steps


def _instantiate(spec: StepSpec, keys: Sequence[str] | str) -> MapTransform:
    name, kwargs = spec
    if name == "ScaleIntensityRanged":  # the same arithmetic in one new tensor (IntensityWindowd)
        return IntensityWindowd(keys=keys, low=kwargs["a_min"], high=kwargs["a_max"])
    return getattr(monai.transforms, name)(keys=keys, **kwargs)


def build_preprocessing(
    cfg: DataConfig, keys: Sequence[str] = (IMAGE, LABEL), checks: InputChecks | None = None
) -> list:
    """Deterministic steps shared by training, validation and inference (all invertible in space)."""
    return _geometry(cfg, tuple(keys), checks) + _normalisation(cfg, tuple(keys))


def _geometry(cfg: DataConfig, keys: tuple[str, ...], checks: InputChecks | None = None) -> list:
    """Loading (checked: :mod:`medseg_monai.io.validation`), channels first, label values, orientation and
    spacing: the image keeps its own intensities."""
    has_label = LABEL in keys
    channels = cfg.in_channels if cfg.image_dims == 3 else None  # 2D: gray and RGB convert into each other
    steps: list = [image_loader(IMAGE, checks=checks, channels=channels)]
    if has_label:
        steps.append(image_loader(LABEL, checks=checks, role="mask"))
    steps.append(EnsureChannelFirstd(keys=keys))
    if has_label:
        if cfg.label_values is None:
            raise ValueError("data.label_values must be resolved before building transforms")
        steps.append(MapLabelValuesd(keys=LABEL, label_values=cfg.label_values))
    steps += [_instantiate(spec, keys) for spec in spatial_steps(cfg, has_label)]
    return steps


def _normalisation(cfg: DataConfig, keys: tuple[str, ...]) -> list:
    steps: list = []
    if cfg.in_channels is not None:
        steps.append(MatchChannelsd(keys=IMAGE, channels=cfg.in_channels, convert=cfg.channel_names is None))
    steps += [_instantiate(spec, IMAGE) for spec in intensity_steps(cfg)]
    steps.append(EnsureTyped(keys=keys, dtype=torch.float32, track_meta=True))
    return steps


def _augmentation(cfg: DataConfig) -> list:
    keys = (IMAGE, LABEL)
    dims = cfg.spatial_dims
    steps: list = [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in cfg.mirror_axes]
    if cfg.rotate90 and cfg.patch_size[0] == cfg.patch_size[1]:  # a quarter turn must keep the patch shape
        steps.append(RandRotate90d(keys=keys, prob=0.5, max_k=3, spatial_axes=(0, 1)))
    angle = np.pi / 12
    steps.append(
        RandAffined(
            keys=keys,
            prob=0.2,
            rotate_range=(angle,) if dims == 2 else (angle, angle, angle),
            scale_range=(0.1,) * dims,
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        )
    )
    steps += [
        RandScaleIntensityd(keys=IMAGE, factors=0.1, prob=0.5),
        RandShiftIntensityd(keys=IMAGE, offsets=0.1, prob=0.5),
        RandGaussianNoised(keys=IMAGE, prob=0.15, std=0.02),
    ]
    return steps


def build_train_transforms(cfg: DataConfig) -> Compose:
    """Preprocessing + pad to patch + pos/neg patch sampling + augmentation. Output image ``(C, *patch)``
    (``(C * (2k + 1), *patch)`` for a 2D network on volumes, :mod:`~medseg_monai.transforms.slicing`)."""
    keys = (IMAGE, LABEL)
    pos = cfg.foreground_ratio
    steps = build_preprocessing(cfg, keys)
    if cfg.slice_axis is not None:
        return Compose(steps + slice_patch_steps(cfg) + (_augmentation(cfg) if cfg.augment else []))
    steps += [
        SpatialPadd(keys=keys, spatial_size=cfg.patch_size),
        RandCropByPosNegLabeld(
            keys=keys,
            label_key=LABEL,
            spatial_size=cfg.patch_size,
            pos=pos if pos > 0 else 0.0,
            neg=1.0 - pos if pos < 1 else 0.0,
            num_samples=cfg.samples_per_image,
            image_key=None,
        ),
    ]
    if cfg.augment:
        steps += _augmentation(cfg)
    return Compose(steps)


def build_val_transforms(cfg: DataConfig) -> Compose:
    """Whole images and labels, preprocessed for sliding-window validation (a 2.5D network's volumes with their
    context slices stacked as channels)."""
    steps = build_preprocessing(cfg, (IMAGE, LABEL))
    if cfg.slice_axis is not None and cfg.context_slices:
        steps.append(ContextChannelsd(IMAGE, cfg.slice_axis, cfg.context_slices))
    return Compose(steps)


def build_infer_transforms(cfg: DataConfig, checks: InputChecks | None = None) -> Compose:
    """Image only; invertible so predictions map back to the source grid with ``Invertd``."""
    return Compose(build_preprocessing(cfg, (IMAGE,), checks))


def build_infer_stages(cfg: DataConfig, checks: InputChecks | None = None) -> tuple[Compose, Compose]:
    """:func:`build_infer_transforms` in two stages: geometry (the image in the network grid with its own
    intensities, e.g. Hounsfield units) and normalisation (channels and intensity)."""
    return Compose(_geometry(cfg, (IMAGE,), checks)), Compose(_normalisation(cfg, (IMAGE,)))
