"""Frozen configuration shared by the CLI, the Python API and the bundles.

One :class:`RunConfig` describes a whole run (data, network, training, inference). It is saved as
``config.json`` in every run folder and read back by :class:`~medseg_monai.engines.Predictor`, so a
model folder always carries what is needed to preprocess new images exactly as in training.

Fields left as ``None`` are resolved from the data when training starts (input channels, label
values, target spacing); the resolved copy is what lands in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CONFIG_VERSION",
    "INTENSITY_MODES",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "InferConfig",
    "RunConfig",
]

CONFIG_VERSION = 1
INTENSITY_MODES = ("auto", "minmax", "ct", "zscore", "percentile")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how images become network input.

    Attributes:
        data_dir: dataset root in any supported layout (see :mod:`medseg_monai.data.datalist`).
        val_dir: explicit validation dataset; when unset, ``val_fraction`` of ``data_dir`` is held out.
        datalist: MONAI decathlon-style datalist JSON (``training``/``validation`` lists); overrides discovery.
        val_fraction: share of cases held out for validation when no explicit validation set is given.
        seed: seed of the train/validation split.
        spatial_dims: 2 for slices (PNG/TIF/JPG), 3 for volumes.
        in_channels: image channels (1 gray, 3 RGB); ``None`` is read from the first image.
        label_values: raw mask value of each class index, e.g. ``(0, 255)`` for binary PNG masks;
            ``None`` collects the values present in the training masks.
        label_names: one name per class, background first; ``None`` gives ``("background", "class_1", ...)``.
        intensity: ``minmax`` (scale each image to [0, 1]), ``ct`` (clip to ``ct_window`` then [0, 1]),
            ``zscore`` (per image on nonzero voxels), ``percentile`` (clip to the 0.5/99.5 percentiles of
            the image, then z-score), or ``auto`` (``minmax`` for 2D, ``zscore`` for 3D).
        ct_window: Hounsfield window used by ``intensity="ct"``.
        orientation: axis codes volumes are reoriented to (3D only); ``None`` keeps the stored order.
        target_spacing: voxel spacing in mm to resample volumes to (3D only); ``None`` uses the median
            spacing of the training set; an empty tuple disables resampling.
        patch_size: training patch and default sliding-window size, ``(H, W)`` or ``(H, W, D)``.
        samples_per_image: random patches drawn from each image per iteration.
        foreground_ratio: share of patches centred on a labelled voxel (``RandCropByPosNegLabeld``).
        augment: random flips, 90-degree rotations, small affine and intensity jitter during training.
        flip_axes: spatial axes that training mirrors at random and that flip test-time augmentation
            averages over; ``None`` means every axis. Leave out axes with an anatomical sense: ``(1,)``
            keeps only left-right flips of axial slices stored ``(H, W)``.
        rotate90: random quarter turns in the first two spatial axes during training (square patches only).
        cache_rate: share of the preprocessed training set kept in memory (``CacheDataset``).
        num_workers: data-loader worker processes.
    """

    data_dir: str = ""
    val_dir: str | None = None
    datalist: str | None = None
    val_fraction: float = 0.2
    seed: int = 0
    spatial_dims: int = 2
    in_channels: int | None = None
    label_values: tuple[int, ...] | None = None
    label_names: tuple[str, ...] | None = None
    intensity: str = "auto"
    ct_window: tuple[float, float] = (-175.0, 250.0)
    orientation: str | None = "RAS"
    target_spacing: tuple[float, ...] | None = None
    patch_size: tuple[int, ...] = (128, 128)
    samples_per_image: int = 2
    foreground_ratio: float = 0.5
    augment: bool = True
    flip_axes: tuple[int, ...] | None = None
    rotate90: bool = True
    cache_rate: float = 1.0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.patch_size) != self.spatial_dims or any(int(p) <= 0 for p in self.patch_size):
            raise ValueError(
                f"patch_size must hold {self.spatial_dims} positive sizes, got {self.patch_size}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.intensity not in INTENSITY_MODES:
            raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {self.intensity!r}")
        if self.samples_per_image < 1:
            raise ValueError(f"samples_per_image must be >= 1, got {self.samples_per_image}")
        if not 0.0 <= self.foreground_ratio <= 1.0:
            raise ValueError(f"foreground_ratio must be in [0, 1], got {self.foreground_ratio}")
        if not 0.0 <= self.cache_rate <= 1.0:
            raise ValueError(f"cache_rate must be in [0, 1], got {self.cache_rate}")
        if self.label_values is not None and len(set(self.label_values)) != len(self.label_values):
            raise ValueError(f"label_values must be distinct, got {self.label_values}")
        if self.label_values is not None and len(self.label_values) < 2:
            raise ValueError(f"label_values needs background and at least one class, got {self.label_values}")
        if (
            self.label_names is not None
            and self.label_values is not None
            and len(self.label_names) != len(self.label_values)
        ):
            raise ValueError(
                f"label_names has {len(self.label_names)} entries but label_values has {len(self.label_values)}"
            )
        if self.flip_axes is not None and (
            len(set(self.flip_axes)) != len(self.flip_axes)
            or any(not 0 <= int(a) < self.spatial_dims for a in self.flip_axes)
        ):
            raise ValueError(
                f"flip_axes must hold distinct spatial axes in [0, {self.spatial_dims}), got {self.flip_axes}"
            )
        if self.target_spacing and len(self.target_spacing) != self.spatial_dims:
            raise ValueError(
                f"target_spacing must hold {self.spatial_dims} values, got {self.target_spacing}"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes including background (requires resolved ``label_values``)."""
        if self.label_values is None:
            raise ValueError("label_values is not resolved yet; train or set data.label_values")
        return len(self.label_values)

    @property
    def mirror_axes(self) -> tuple[int, ...]:
        """Spatial axes mirrored in training and by flip test-time augmentation."""
        return tuple(range(self.spatial_dims)) if self.flip_axes is None else tuple(int(a) for a in self.flip_axes)

    @property
    def resolved_intensity(self) -> str:
        if self.intensity != "auto":
            return self.intensity
        return "minmax" if self.spatial_dims == 2 else "zscore"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build (see :func:`medseg_monai.networks.create_network`).

    Attributes:
        name: registered network name: ``unet``, ``unetpp`` or ``deeplabv3``.
        options: extra keyword arguments for the network (``channels``, ``backbone``, ...).
        deep_supervision: train ``unetpp`` on all its decoder heads (inference always uses one head).
        pretrained: local weights file (state dict) for the backbone; nothing is ever downloaded.
    """

    name: str = "unet"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    deep_supervision: bool = False
    pretrained: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule.

    Attributes:
        epochs: passes over the training set (an epoch is ``iterations_per_epoch`` steps when set).
        iterations_per_epoch: fixed number of steps per epoch; ``None`` uses one pass over the data.
        batch_size: images per step (each contributes ``samples_per_image`` patches).
        optimizer: ``adamw``, ``adam`` or ``sgd``.
        learning_rate, weight_decay: optimiser settings.
        scheduler: ``cosine``, ``poly`` or ``none``.
        val_interval: validate every N epochs (and always after the last).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        amp: mixed precision on CUDA (ignored on CPU).
        seed: seed for weights, sampling and augmentation.
        time_budget_min: stop after the epoch that crosses this wall-clock budget.
        fit_epochs_to_budget: with ``time_budget_min``, re-fit ``epochs`` (and the learning-rate
            schedule's length) once the first warm epochs have been timed, so that the schedule anneals
            just as the budget ends instead of being cut short or finishing early (single process only).
        freeze_backbone_epochs: DeepLabV3 two-stage schedule: epochs with a frozen backbone before all
            layers train at ``learning_rate * finetune_lr_factor``.
        finetune_lr_factor: learning-rate factor of the second stage.
        distributed: require a multi-process ``torchrun`` launch and train with
            ``DistributedDataParallel``; a launch with ``WORLD_SIZE > 1`` switches it on by itself.
        dist_backend: process-group backend: ``auto`` (``nccl`` on CUDA, ``gloo`` on CPU), ``nccl`` or ``gloo``.
    """

    epochs: int = 50
    iterations_per_epoch: int | None = None
    batch_size: int = 4
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    scheduler: str = "cosine"
    val_interval: int = 1
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    time_budget_min: float | None = None
    fit_epochs_to_budget: bool = False
    freeze_backbone_epochs: int = 0
    finetune_lr_factor: float = 0.1
    distributed: bool = False
    dist_backend: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"optimizer must be 'adamw', 'adam' or 'sgd', got {self.optimizer!r}")
        if self.scheduler not in ("cosine", "poly", "none"):
            raise ValueError(f"scheduler must be 'cosine', 'poly' or 'none', got {self.scheduler!r}")
        if self.val_interval < 1:
            raise ValueError(f"val_interval must be >= 1, got {self.val_interval}")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ValueError(f"iterations_per_epoch must be >= 1, got {self.iterations_per_epoch}")
        if self.dist_backend not in ("auto", "nccl", "gloo"):
            raise ValueError(f"dist_backend must be 'auto', 'nccl' or 'gloo', got {self.dist_backend!r}")


@dataclasses.dataclass(frozen=True)
class InferConfig:
    """Sliding-window inference and post-processing.

    Attributes:
        roi_size: sliding-window size; ``None`` uses the training ``patch_size``.
        overlap: window overlap in [0, 1).
        sw_batch_size: windows per forward pass.
        blend_mode: ``gaussian`` or ``constant``.
        device: where the network runs (``auto``, ``cpu``, ``cuda[:N]``).
        sw_device: where windows are stitched; ``None`` is ``device``.
        tta_flips: average the softmax over flips of every combination of the axes training mirrored
            (``data.mirror_axes``), as nnU-Net does.
        min_component_size: remove connected components of a class with fewer voxels than this (0 keeps all);
            clears isolated false-positive specks, e.g. on slices without the organ.
        keep_largest_component: keep only the largest connected component of each class.
        fill_holes: fill enclosed holes in each class.
        output_format: force the mask format (``nifti``, ``mha``, ``nrrd``, ``png``, ``tif``); ``None`` keeps
            the source's format.
        stitching: ``slab`` blends windows one slab at a time and keeps only a ``uint8`` label map of the
            whole image (bounded memory; resampling to and from the network grid is separable and
            ``uint8`` on the way back); ``full`` is MONAI's ``SlidingWindowInferer`` over the whole image
            with ``Spacingd``/``Invertd`` (a float ``classes x image`` buffer; for comparison).
        amp: float16 autocast for the network on CUDA (ignored on CPU).
    """

    roi_size: tuple[int, ...] | None = None
    overlap: float = 0.25
    sw_batch_size: int = 4
    blend_mode: str = "gaussian"
    device: str = "auto"
    sw_device: str | None = None
    tta_flips: bool = False
    min_component_size: int = 0
    keep_largest_component: bool = False
    fill_holes: bool = False
    output_format: str | None = None
    stitching: str = "slab"
    amp: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be >= 1, got {self.sw_batch_size}")
        if self.blend_mode not in ("gaussian", "constant"):
            raise ValueError(f"blend_mode must be 'gaussian' or 'constant', got {self.blend_mode!r}")
        if self.roi_size is not None and any(int(r) <= 0 for r in self.roi_size):
            raise ValueError(f"roi_size must be positive, got {self.roi_size}")
        if self.min_component_size < 0:
            raise ValueError(f"min_component_size must be >= 0, got {self.min_component_size}")
        if self.stitching not in ("slab", "full"):
            raise ValueError(f"stitching must be 'slab' or 'full', got {self.stitching!r}")
        if self.output_format is not None and self.output_format not in ("nifti", "mha", "nrrd", "png", "tif"):
            raise ValueError(f"output_format must be nifti, mha, nrrd, png or tif, got {self.output_format!r}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json`` next to its checkpoints."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    infer: InferConfig = dataclasses.field(default_factory=InferConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.infer.roi_size is not None and len(self.infer.roi_size) != self.data.spatial_dims:
            raise ValueError(
                f"infer.roi_size must hold {self.data.spatial_dims} sizes, got {self.infer.roi_size}"
            )

    @property
    def roi_size(self) -> tuple[int, ...]:
        """Sliding-window size: ``infer.roi_size`` or the training patch size."""
        return tuple(self.infer.roi_size or self.data.patch_size)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Build from a (JSON) mapping; unknown keys raise ``ValueError`` naming them."""
        version = raw.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(f"config version {version} is newer than this package supports ({CONFIG_VERSION})")
        return _from_mapping(cls, raw, "config")

    def save(self, path: str | Path) -> Path:
        """Write as JSON atomically."""
        from medseg_monai.utils import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None

    def override(self, overrides: Mapping[str, Any]) -> RunConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"train.epochs": 3}``."""
        raw = self.to_dict()
        for dotted, value in overrides.items():
            section, _, field = dotted.partition(".")
            if not field or section not in raw or not isinstance(raw[section], dict):
                raise ValueError(f"override key must look like 'section.field', got {dotted!r}")
            if field not in raw[section]:
                raise ValueError(f"unknown config field {dotted!r}; known: {sorted(raw[section])}")
            raw[section][field] = value
        try:
            return RunConfig.from_dict(raw)
        except TypeError as err:
            raise ValueError(str(err)) from None


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _from_mapping(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    if not isinstance(raw, Mapping):
        raise TypeError(f"{where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in {where}; known: {sorted(names)}")
    kwargs = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Turn JSON values back into the annotated types (lists -> tuples, nested dataclasses)."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint):
        return _from_mapping(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a list, got {value!r}")
        item_type = typing.get_args(hint)[0]
        return tuple(_coerce(item_type, v, where) for v in value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
