"""The settings of a run, one frozen dataclass per concern.

One :class:`RunConfig` describes a whole run (data, network, training, inference). It is saved as
``config.json`` in every run folder and read back by :class:`~medseg_monai.inference.Predictor`, so a
model folder always carries what is needed to preprocess new images exactly as in training.
:class:`~medseg_monai.config.BatchOptions` (its own module) says how a batch of predictions is run; it is not part of a run.

Fields left as ``None`` that depend on the data (2D or 3D, patch size, input channels, label values,
target spacing) are resolved by :func:`medseg_monai.data.resolve_data_config` when training starts;
the resolved copy is what lands in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from medseg_monai.config.fields import check_choices, documented, from_mapping, replace_fields, setting, to_jsonable
from medseg_monai.errors import ConfigError

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_PATCH_SIZE",
    "SLICES_PER_WINDOW",
    "INTENSITY_MODES",
    "OUTPUT_FORMATS",
    "PRECISIONS",
    "DataConfig",
    "InferConfig",
    "ModelConfig",
    "SECTIONS",
    "RunConfig",
    "TrainConfig",
    "dataset_fields",
]

CONFIG_VERSION = 1

Intensity = Literal["auto", "minmax", "ct", "zscore", "percentile"]
Optimizer = Literal["adamw", "adam", "sgd"]
Scheduler = Literal["cosine", "poly", "step", "plateau", "none"]
DistBackend = Literal["auto", "nccl", "gloo"]
BlendMode = Literal["gaussian", "constant"]
Stitching = Literal["slab", "full"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ForegroundCrop = Literal["auto", "ct", "nonzero", "otsu", "none"]
MemoryFormat = Literal["auto", "channels_last", "contiguous"]
Compile = Literal["auto", "on", "off"]
Inversion = Literal["labels", "linear"]
OutputFormat = Literal["nifti", "mha", "nrrd", "png", "tif", "seg"]

INTENSITY_MODES: tuple[str, ...] = get_args(Intensity)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: slices in each window of a 2D network on volumes (one forward pass holds ``sw_batch_size`` windows of them)
SLICES_PER_WINDOW = 8
#: training patch (and sliding window) used when ``data.patch_size`` is not given
DEFAULT_PATCH_SIZE: dict[int, tuple[int, ...]] = {2: (128, 128), 3: (96, 96, 64)}


@documented
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how images become network input."""

    data_dir: str = setting(
        "",
        help="Dataset root in any supported layout (flat, images/+masks/, imagesTr/+labelsTr/); `medseg train --data`.",
        cli=False,
    )
    val_dir: str | None = setting(
        None,
        help="Explicit validation dataset; when unset, `val_fraction` of `data_dir` is held out.",
        aliases=("--val-data",),
    )
    datalist: str | None = setting(
        None,
        help="MONAI decathlon-style datalist JSON (`training`/`validation` lists); overrides "
        "discovery; `medseg train --data LIST.json`.",
        cli=False,
    )
    val_fraction: float = setting(0.2, help="Share of cases held out for validation when no validation set is given.")
    seed: int = setting(0, help="Seed of the train/validation split.", flag="--split-seed")
    spatial_dims: Literal[2, 3] | None = setting(
        None,
        help="Network dims: 2 for slices (PNG/TIF/JPG) and for a 2D network on volumes (see `slice_axis`), 3 for volumes; `null`: the length of `patch_size` when it is given, "
        "else the format of the training images.",
        flag="--dims",
        aliases=("--spatial-dims",),
    )
    slice_axis: int | None = setting(
        None,
        help="A 2D network on volumes (`spatial_dims=2` with NIfTI/MHA/NRRD/DICOM images) trains on and predicts slices "
        "across this axis of the reoriented volume (2: axial in RAS); `null`: 2 for volumes, unused for 2D images.",
    )
    context_slices: int = setting(
        0,
        help="2.5D: neighbouring slices on each side fed to a 2D network on volumes as extra input channels (edges repeat "
        "the outermost slice).",
    )
    in_channels: int | None = setting(
        None,
        help="Image channels (1 gray, 3 RGB, or one per channel file of a case); `null` reads them "
        "from the training data.",
    )
    channel_names: tuple[str, ...] | None = setting(
        None,
        help="Name of each input channel when a case has several images (`NAME_0000`, `NAME_0001`, ... files, a datalist "
        '`image` list, or a 4D MSD volume), e.g. `["T2", "ADC"]`; `null` takes `channel_names`/`modality` of '
        "`dataset.json`, else `channel_0, channel_1, ...` for separate files. When set, every case must give exactly "
        "these channels and `minmax` scales each channel on its own.",
        metavar="NAME",
    )
    label_values: tuple[int, ...] | None = setting(
        None,
        help="Raw mask value of each class index, e.g. `[0, 255]` for binary PNG masks; `null` collects the values "
        "present in the training masks.",
    )
    label_names: tuple[str, ...] | None = setting(
        None, help='One name per class, background first; `null` gives `["background", "class_1", ...]`.'
    )
    intensity: Intensity = setting(
        "auto",
        help="`minmax` scales each image to [0, 1]; `ct` clips to `ct_window`, then [0, 1]; `zscore` per image on nonzero "
        "voxels; `percentile` clips to the image's 0.5/99.5 percentiles, then z-scores; `auto` is `minmax` in 2D "
        "and `zscore` in 3D.",
    )
    ct_window: tuple[float, float] = setting(
        (-175.0, 250.0), help='Hounsfield window of `intensity="ct"`.', metavar="HU"
    )
    orientation: str | None = setting(
        "RAS",
        help="Axis codes volumes are reoriented to (volumes only, also under a 2D network); `null` keeps the stored order.",
    )
    target_spacing: tuple[float, ...] | None = setting(
        None,
        help="Voxel spacing in mm volumes are resampled to (volumes only, three values also under a 2D network); `null` takes the median spacing of the training set; "
        "an empty list disables resampling.",
        flag="--spacing",
        aliases=("--target-spacing",),
        nargs="*",
        metavar="MM",
    )
    patch_size: tuple[int, ...] | None = setting(
        None,
        help="Training patch and default sliding window, `[H, W]` or `[H, W, D]`; `null` is 128x128 in 2D and 96x96x64 in 3D.",
    )
    samples_per_image: int = setting(2, help="Random patches drawn from each image per iteration.")
    foreground_ratio: float = setting(
        0.5, help="Share of patches centred on a labelled voxel (`RandCropByPosNegLabeld`)."
    )
    augment: bool = setting(
        True, help="Random flips, quarter turns, small affine and intensity jitter during training."
    )
    flip_axes: tuple[int, ...] | None = setting(
        None,
        help="Spatial axes that training mirrors at random and that flip test-time augmentation averages over; `null` is "
        "every axis. Leave out axes with an anatomical sense: `[1]` keeps only left-right flips of axial slices "
        "stored `(H, W)`.",
        nargs="*",
        metavar="AXIS",
    )
    rotate90: bool = setting(
        True, help="Random quarter turns in the first two spatial axes during training (square patches only)."
    )
    cache_rate: float = setting(1.0, help="Share of the preprocessed training set kept in memory (`CacheDataset`).")
    num_workers: int = setting(0, help="Data-loader worker processes.")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.patch_size is not None:
            object.__setattr__(self, "patch_size", tuple(self.patch_size))
            if self.spatial_dims is None and len(self.patch_size) in (2, 3):
                object.__setattr__(self, "spatial_dims", len(self.patch_size))
        elif self.spatial_dims is not None:
            object.__setattr__(self, "patch_size", DEFAULT_PATCH_SIZE[self.spatial_dims])
        dims = self.spatial_dims
        if self.patch_size is not None and (
            len(self.patch_size) != (dims or len(self.patch_size))
            or len(self.patch_size) not in (2, 3)
            or any(int(p) <= 0 for p in self.patch_size)
        ):
            raise ConfigError(f"patch_size must hold {dims or '2 or 3'} positive sizes, got {self.patch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.samples_per_image < 1:
            raise ConfigError(f"samples_per_image must be >= 1, got {self.samples_per_image}")
        if not 0.0 <= self.foreground_ratio <= 1.0:
            raise ConfigError(f"foreground_ratio must be in [0, 1], got {self.foreground_ratio}")
        if not 0.0 <= self.cache_rate <= 1.0:
            raise ConfigError(f"cache_rate must be in [0, 1], got {self.cache_rate}")
        if self.label_values is not None and len(set(self.label_values)) != len(self.label_values):
            raise ConfigError(f"label_values must be distinct, got {self.label_values}")
        if self.label_values is not None and len(self.label_values) < 2:
            raise ConfigError(f"label_values needs background and at least one class, got {self.label_values}")
        if (
            self.label_names is not None
            and self.label_values is not None
            and len(self.label_names) != len(self.label_values)
        ):
            raise ConfigError(
                f"label_names has {len(self.label_names)} entries but label_values has {len(self.label_values)}"
            )
        if self.channel_names is not None:
            object.__setattr__(self, "channel_names", tuple(str(n) for n in self.channel_names))
            if not self.channel_names or (self.in_channels is not None and len(self.channel_names) != self.in_channels):
                raise ConfigError(
                    f"channel_names must name each of the {self.in_channels} input channel(s), got {list(self.channel_names)}"
                )
        if self.context_slices < 0:
            raise ConfigError(f"context_slices must be >= 0, got {self.context_slices}")
        if self.slice_axis is not None and (isinstance(self.slice_axis, bool) or self.slice_axis not in (0, 1, 2)):
            raise ConfigError(f"slice_axis must be 0, 1 or 2, got {self.slice_axis!r}")
        if dims == 3 and (self.slice_axis is not None or self.context_slices):
            raise ConfigError("slice_axis and context_slices are for 2D networks on volumes; set data.spatial_dims=2")
        if dims is None:
            return
        if self.flip_axes is not None and (
            len(set(self.flip_axes)) != len(self.flip_axes) or any(not 0 <= int(a) < dims for a in self.flip_axes)
        ):
            raise ConfigError(f"flip_axes must hold distinct spatial axes in [0, {dims}), got {self.flip_axes}")
        allowed = (
            {2, 3} if dims == 2 and self.slice_axis is None else {self.image_dims}
        )  # 2D network: images or volumes
        if self.target_spacing and len(self.target_spacing) not in allowed:
            raise ConfigError(f"target_spacing must hold {self.image_dims} values, got {self.target_spacing}")

    def _dims(self) -> int:
        if self.spatial_dims is None:
            raise ConfigError(
                "data.spatial_dims is not resolved yet; train or set data.spatial_dims (or data.patch_size)"
            )
        return self.spatial_dims

    @property
    def image_dims(self) -> int:
        """Spatial dims of the images: 3 for volumes (also under a 2D network slicing them), else ``spatial_dims``."""
        return 3 if self.slice_axis is not None else self._dims()

    @property
    def slices_per_input(self) -> int:
        """Slices a 2D network on volumes sees per prediction: the slice itself and its context on each side."""
        return 2 * self.context_slices + 1

    @property
    def network_in_channels(self) -> int:
        """Input channels of the network: image channels times :attr:`slices_per_input`."""
        if self.in_channels is None:
            raise ConfigError("in_channels is not resolved yet; train or set data.in_channels")
        return self.in_channels * self.slices_per_input

    @property
    def num_classes(self) -> int:
        """Number of classes including background (requires resolved ``label_values``)."""
        if self.label_values is None:
            raise ConfigError("label_values is not resolved yet; train or set data.label_values")
        return len(self.label_values)

    @property
    def mirror_axes(self) -> tuple[int, ...]:
        """Spatial axes mirrored in training and by flip test-time augmentation."""
        return tuple(range(self._dims())) if self.flip_axes is None else tuple(int(a) for a in self.flip_axes)

    @property
    def resolved_intensity(self) -> str:
        if self.intensity != "auto":
            return self.intensity
        return "minmax" if self.image_dims == 2 else "zscore"


@documented
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build (see :func:`medseg_monai.networks.create_network`)."""

    name: str = setting("unet", help="Registered network name: `unet`, `unetpp` or `deeplabv3`.", flag="--network")
    options: Mapping[str, Any] = setting(
        default_factory=dict,
        help='Extra keyword arguments of the network as a JSON object, e.g. `{"channels": [8, 16, 32]}`.',
        flag="--network-options",
        metavar="JSON",
    )
    deep_supervision: bool = setting(
        False, help="Train `unetpp` on all its decoder heads (inference always uses one head)."
    )
    pretrained: str | None = setting(
        None, help="Local weights file (state dict) for the DeepLabV3 backbone; nothing is ever downloaded."
    )


@documented
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule."""

    epochs: int = setting(50, help="Passes over the training set (an epoch is `iterations_per_epoch` steps when set).")
    iterations_per_epoch: int | None = setting(
        None, help="Fixed number of steps per epoch; `null` is one pass over the data."
    )
    batch_size: int = setting(4, help="Images per step (each contributes `samples_per_image` patches).")
    optimizer: Optimizer = setting("adamw", help="Optimiser.")
    learning_rate: float = setting(1e-3, help="Initial learning rate.", aliases=("--lr",))
    weight_decay: float = setting(1e-5, help="Weight decay of the optimiser.")
    scheduler: Scheduler = setting(
        "cosine",
        help="Learning-rate schedule: `cosine` (down to 1 % over `epochs`), `poly` (power 0.9), `step` (times `lr_gamma` "
        "every `step_size` epochs), `plateau` (times `lr_gamma` when the validation mean Dice has not improved for "
        "`plateau_patience` validations; `ReduceLROnPlateau`) or `none`.",
    )
    step_size: int = setting(30, help="Epochs between the drops of `scheduler=step`.")
    lr_gamma: float = setting(0.1, help="Factor of each learning-rate drop of `step` and `plateau`.")
    plateau_patience: int = setting(5, help="Validations without improvement before `plateau` drops the learning rate.")
    warmup_epochs: float = setting(
        0.0,
        help="Linear warm-up: the learning rate rises from 0 to the schedule's over this many epochs (per step; fractions "
        "allowed), then the schedule goes on as if there had been none.",
    )
    early_stop_patience: int | None = setting(
        None,
        help="Stop when the validation mean Dice has not improved by more than `early_stop_min_delta` for this many "
        "validations (ignite `EarlyStopping`); `null` never stops early.",
        metavar="N",
    )
    early_stop_min_delta: float = setting(
        0.0, help="Improvement of the validation mean Dice that resets `early_stop_patience`."
    )
    accumulate_steps: int = setting(
        1,
        help="Gradient accumulation: the optimiser steps once every N batches, so the effective batch is N x `batch_size` "
        "(logged at the start).",
        metavar="N",
    )
    grad_clip: float | None = setting(
        None,
        help="Clip the gradients' global L2 norm to this before every optimiser step; `null`: no clipping.",
        metavar="NORM",
    )
    tensorboard: bool = setting(
        True,
        help="Write TensorBoard events into `RUN/tensorboard/`: training loss and learning rate per step, validation "
        "metrics per epoch, image | truth | prediction of a fixed validation case every `tensorboard_images_every` "
        "validations.",
    )
    tensorboard_images_every: int = setting(
        5, help="Validations between the image grids written to TensorBoard (0: none).", metavar="N"
    )
    val_interval: int = setting(1, help="Validate every N epochs (and always after the last).")
    device: str = setting(
        "auto", help="`auto` (CUDA when available, one GPU per torchrun process), `cpu` or `cuda[:N]`."
    )
    precision: Precision = setting(
        "auto",
        help="Training arithmetic: `auto` is float16 mixed precision on CUDA and bfloat16 autocast on CPUs with native "
        "bfloat16 (AVX512-BF16/AMX), else float32; `fp32`, `bf16`, `fp16` (CUDA) force one.",
    )
    memory_format: MemoryFormat = setting(
        "auto",
        help="Tensor layout of the network in training: `channels_last`, `contiguous`, or `auto`: channels-last "
        "except for `unetpp`, which it slows down.",
    )
    compile: Compile = setting(
        "auto",
        help="`torch.compile` the network for training (about 1.3x per step on the CPU after a one-off compilation of "
        "1-2 min): `auto` compiles single-process runs of >= 400 steps or a time budget >= 10 min.",
    )
    seed: int = setting(0, help="Seed for weights, sampling and augmentation.")
    time_budget_min: float | None = setting(
        None, help="Stop after the epoch that crosses this wall-clock budget in minutes."
    )
    schedule_by_time: bool = setting(
        False,
        help="With `time_budget_min`: the learning rate follows the elapsed share of the budget (cosine or poly of "
        "elapsed / budget) rather than the epoch count, so it anneals as the budget ends however fast the epochs "
        "run; `epochs` stays an upper bound.",
    )
    freeze_backbone_epochs: int = setting(
        0,
        help="DeepLabV3 two-stage schedule: epochs with a frozen backbone before all layers train at "
        "`learning_rate * finetune_lr_factor`.",
    )
    finetune_lr_factor: float = setting(0.1, help="Learning-rate factor of the second stage.")
    distributed: bool = setting(
        False,
        help="Require a multi-process `torchrun` launch and train with `DistributedDataParallel`; a launch with "
        "`WORLD_SIZE > 1` switches it on by itself.",
    )
    dist_backend: DistBackend = setting(
        "auto", help="Process-group backend: `auto` is `nccl` on CUDA and `gloo` on CPU."
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.val_interval < 1:
            raise ConfigError(f"val_interval must be >= 1, got {self.val_interval}")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ConfigError(f"iterations_per_epoch must be >= 1, got {self.iterations_per_epoch}")
        if self.step_size < 1:
            raise ConfigError(f"step_size must be >= 1, got {self.step_size}")
        if not 0.0 < self.lr_gamma < 1.0:
            raise ConfigError(f"lr_gamma must be in (0, 1), got {self.lr_gamma}")
        if self.plateau_patience < 0:
            raise ConfigError(f"plateau_patience must be >= 0, got {self.plateau_patience}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise ConfigError(f"early_stop_patience must be >= 1 (or null), got {self.early_stop_patience}")
        if self.early_stop_min_delta < 0:
            raise ConfigError(f"early_stop_min_delta must be >= 0, got {self.early_stop_min_delta}")
        if self.accumulate_steps < 1:
            raise ConfigError(f"accumulate_steps must be >= 1, got {self.accumulate_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive (or null), got {self.grad_clip}")
        if self.tensorboard_images_every < 0:
            raise ConfigError(f"tensorboard_images_every must be >= 0, got {self.tensorboard_images_every}")
        if self.schedule_by_time and self.scheduler in ("step", "plateau"):
            raise ConfigError(
                f"schedule_by_time follows the budget with cosine, poly or none, not scheduler={self.scheduler!r}"
            )


@documented
@dataclasses.dataclass(frozen=True)
class InferConfig:
    """Sliding-window inference and post-processing."""

    roi_size: tuple[int, ...] | None = setting(None, help="Sliding-window size; `null` is the training `patch_size`.")
    overlap: float = setting(0.25, help="Window overlap in [0, 1).")
    sw_batch_size: int = setting(4, help="Windows per forward pass.")
    blend_mode: BlendMode = setting("gaussian", help="How overlapping windows are weighted.")
    device: str = setting(
        "auto",
        help="Where the network runs: `auto` (CUDA when available, one GPU per torchrun process), `cpu` or `cuda[:N]`.",
    )
    sw_device: str | None = setting(None, help="Where windows are stitched; `null` is `device`.")
    tta_flips: bool = setting(
        False,
        help="Average the softmax over flips of every combination of the axes training mirrored (`data.flip_axes`), as "
        "nnU-Net does.",
        aliases=("--tta",),
    )
    min_component_size: int = setting(
        0,
        help="Remove connected components of a class with fewer voxels than this (0 keeps all): isolated false-positive "
        "specks, e.g. on slices without the organ.",
        metavar="N",
    )
    keep_largest_component: bool = setting(
        False, help="Keep only the largest connected component of each class.", aliases=("--keep-largest",)
    )
    fill_holes: bool = setting(False, help="Fill enclosed holes in each class.")
    output_format: OutputFormat | None = setting(
        None, help="Mask format; `null` keeps the source's (DICOM series get a DICOM SEG, `seg`: DICOM sources only)."
    )
    stitching: Stitching = setting(
        "slab",
        help="`slab` blends windows one slab at a time and keeps only a `uint8` label map of the whole image (bounded "
        "memory; separable resampling, `uint8` on the way back); `full` is MONAI's `SlidingWindowInferer` over the "
        "whole image with `Spacingd`/`Invertd` (a float `classes x image` buffer; for comparison).",
    )
    inversion: Inversion = setting(
        "linear",
        help="How predictions return to the source grid: `linear` interpolates the class probabilities into the "
        "source grid slab by slab and takes the argmax there, as MONAI's `Invertd` recipes do (smoother where "
        "the source is finer; axis-aligned grids, else `labels`); `labels` takes the argmax in the network "
        "grid and maps the `uint8` labels back nearest-neighbour (a little faster).",
    )
    precision: Precision = setting(
        "auto",
        help="Network arithmetic: `auto` is float16 autocast on CUDA and bfloat16 autocast on CPUs with native bfloat16 "
        "(AVX512-BF16/AMX), else float32; `fp32`, `bf16`, `fp16` (CUDA) force one.",
    )
    memory_format: MemoryFormat = setting(
        "auto",
        help="Tensor layout of the network: `channels_last` (`channels_last_3d` for volumes; 1.2-1.6x faster convolutions "
        "on CPUs), `contiguous`, or `auto`: channels-last except for `unetpp`, which it slows down.",
    )
    foreground_crop: ForegroundCrop = setting(
        "auto",
        help="Run windows only where the body is: of the image's own window grid, only the windows needed to cover the "
        "box of the foreground's sizeable components (plus `crop_margin_mm`) and holding foreground run; the rest "
        "is background. `ct`: above -500 HU; `nonzero`; `otsu`: above Otsu's threshold; `auto`: `ct` for "
        "`data.intensity=ct`, `nonzero` when every border voxel is 0, else `none`; `none` runs every window.",
    )
    crop_margin_mm: float = setting(
        20.0, help="Margin kept around the foreground box by `foreground_crop` (mm in 3D, pixels in 2D).", metavar="MM"
    )
    windows_only: bool = setting(
        True,
        help="CT volumes with `foreground_crop`: resample and normalise only what the windows read "
        "(same windows, same values, less time); `false` resamples the whole image.",
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.crop_margin_mm < 0:
            raise ConfigError(f"crop_margin_mm must be >= 0, got {self.crop_margin_mm}")
        if self.roi_size is not None:
            object.__setattr__(self, "roi_size", tuple(self.roi_size))
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.sw_batch_size < 1:
            raise ConfigError(f"sw_batch_size must be >= 1, got {self.sw_batch_size}")
        if self.roi_size is not None and any(int(r) <= 0 for r in self.roi_size):
            raise ConfigError(f"roi_size must be positive, got {self.roi_size}")
        if self.min_component_size < 0:
            raise ConfigError(f"min_component_size must be >= 0, got {self.min_component_size}")


def _upgrade(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read configs written before ``precision`` replaced ``amp`` (``amp: false`` is ``fp32``) and
    ``train.schedule_by_time`` replaced ``train.fit_epochs_to_budget``."""
    raw = dict(raw)
    for name in ("train", "infer"):
        section = raw.get(name)
        if not isinstance(section, Mapping) or not {"amp", "fit_epochs_to_budget"} & set(section):
            continue
        section = dict(section)
        if section.pop("amp", None) is False:
            section.setdefault("precision", "fp32")
        if "fit_epochs_to_budget" in section:
            section.setdefault("schedule_by_time", section.pop("fit_epochs_to_budget"))
        raw[name] = section
    return raw


#: the sections of a RunConfig, by name
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "infer": InferConfig}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json`` next to its checkpoints."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    infer: InferConfig = dataclasses.field(default_factory=InferConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        dims = self.data.spatial_dims
        if self.infer.roi_size is not None and dims is not None and len(self.infer.roi_size) != dims:
            raise ConfigError(f"infer.roi_size must hold {dims} sizes, got {self.infer.roi_size}")

    @property
    def roi_size(self) -> tuple[int, ...]:
        """Sliding-window size: ``infer.roi_size`` or the training patch size."""
        size = self.infer.roi_size or self.data.patch_size
        if size is None:
            raise ConfigError("data.patch_size is not resolved yet; train or set data.patch_size")
        return tuple(size)

    def window_size(self, slices: int = SLICES_PER_WINDOW) -> tuple[int, ...]:
        """Sliding-window size in the image grid: :attr:`roi_size`, with ``slices`` across the slice axis
        for a 2D network on volumes."""
        roi = list(self.roi_size)
        if self.data.slice_axis is not None:
            roi.insert(self.data.slice_axis, max(1, slices))
        return tuple(roi)

    @property
    def window_overlap(self) -> float | tuple[float, ...]:
        """``infer.overlap``, per axis for a 2D network on volumes: none across slices (each is predicted once)."""
        if self.data.slice_axis is None:
            return self.infer.overlap
        overlap = [self.infer.overlap] * 3
        overlap[self.data.slice_axis] = 0.0
        return tuple(overlap)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Build from a (JSON) mapping; unknown keys raise ``ValueError`` naming them."""
        version = raw.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ConfigError(f"config version {version} is newer than this package supports ({CONFIG_VERSION})")
        return from_mapping(cls, _upgrade(raw), "config")

    def save(self, path: str | Path) -> Path:
        """Write as JSON atomically."""
        from medseg_monai.utils import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: {err}") from None

    def override(self, overrides: Mapping[str, Any]) -> RunConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"train.epochs": 3}``."""
        changes: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, _, field = dotted.partition(".")
            if not field or section not in SECTIONS:
                raise ConfigError(f"override key must look like 'section.field', got {dotted!r}")
            known = [f.name for f in dataclasses.fields(SECTIONS[section])]
            if field not in known:
                raise ConfigError(f"unknown config field {dotted!r}; known: {sorted(known)}")
            changes.setdefault(section, {})[field] = value
        try:
            sections = {
                name: replace_fields(getattr(self, name), fields, f"config.{name}") for name, fields in changes.items()
            }
            return dataclasses.replace(self, **sections)
        except TypeError as err:
            raise ConfigError(str(err)) from None


def dataset_fields(path: str | Path) -> dict[str, str]:
    """``{"datalist": path}`` for a ``.json`` datalist, else ``{"data_dir": path}``: what a dataset argument sets."""
    key = "datalist" if str(path).lower().endswith(".json") else "data_dir"
    return {key: str(path)}
