"""The ``data`` section of a run: where the data is and how images become network input."""

from __future__ import annotations

import dataclasses
from typing import Literal

from medseg_monai.config.fields import check_choices, documented, setting
from medseg_monai.config.types import DEFAULT_PATCH_SIZE, Intensity
from medseg_monai.errors import ConfigError

__all__ = ["DataConfig"]


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
        help="Network dims: 2 for slices (PNG/TIF/JPG) and for a 2D network on volumes (see `slice_axis`), 3 for "
        "volumes; `null`: the length of `patch_size` when it is given, "
        "else the format of the training images.",
        flag="--dims",
        aliases=("--spatial-dims",),
    )
    slice_axis: int | None = setting(
        None,
        help="A 2D network on volumes (`spatial_dims=2` with NIfTI/MHA/NRRD/DICOM images) trains on and predicts "
        "slices "
        "across this axis of the reoriented volume (2: axial in RAS); `null`: 2 for volumes, unused for 2D images.",
    )
    context_slices: int = setting(
        0,
        help="2.5D: neighbouring slices on each side fed to a 2D network on volumes as extra input channels (edges "
        "repeat "
        "the outermost slice).",
    )
    in_channels: int | None = setting(
        None,
        help="Image channels (1 gray, 3 RGB, or one per channel file of a case); `null` reads them "
        "from the training data.",
    )
    channel_names: tuple[str, ...] | None = setting(
        None,
        help="Name of each input channel when a case has several images (`NAME_0000`, `NAME_0001`, ... files, a "
        "datalist "
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
        help="`minmax` scales each image to [0, 1]; `ct` clips to `ct_window`, then [0, 1]; `zscore` per image on "
        "nonzero "
        "voxels; `percentile` clips to the image's 0.5/99.5 percentiles, then z-scores; `auto` is `minmax` in 2D "
        "and `zscore` in 3D.",
    )
    ct_window: tuple[float, float] = setting(
        (-175.0, 250.0), help='Hounsfield window of `intensity="ct"`.', metavar="HU"
    )
    orientation: str | None = setting(
        "RAS",
        help="Axis codes volumes are reoriented to (volumes only, also under a 2D network); `null` keeps the stored "
        "order.",
    )
    target_spacing: tuple[float, ...] | None = setting(
        None,
        help="Voxel spacing in mm volumes are resampled to (volumes only, three values also under a 2D network); "
        "`null` takes the median spacing of the training set; "
        "an empty list disables resampling.",
        flag="--spacing",
        aliases=("--target-spacing",),
        nargs="*",
        metavar="MM",
    )
    patch_size: tuple[int, ...] | None = setting(
        None,
        help="Training patch and default sliding window, `[H, W]` or `[H, W, D]`; `null` is 128x128 in 2D and "
        "96x96x64 in 3D.",
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
        help="Spatial axes that training mirrors at random and that flip test-time augmentation averages over; `null` "
        "is "
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
                    f"channel_names must name each of the {self.in_channels} input channel(s), got "
                    f"{list(self.channel_names)}"
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
