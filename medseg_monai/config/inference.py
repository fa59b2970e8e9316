"""The ``infer`` section of a run: sliding-window inference and post-processing (resolved once into the
:class:`~medseg_monai.inference.plan.InferencePlan` of a loaded model)."""

from __future__ import annotations

import dataclasses

from medseg_monai.config.fields import check_choices, documented, setting
from medseg_monai.config.types import (
    BlendMode,
    ForegroundCrop,
    Inversion,
    OutputFormat,
    Stitching,
)
from medseg_monai.errors import ConfigError

__all__ = ["InferConfig"]


@documented
@dataclasses.dataclass(frozen=True)
class InferConfig:
    """Sliding-window inference and post-processing."""

    roi_size: tuple[int, ...] | None = setting(None, help="Sliding-window size; `null` is the training `patch_size`.")
    overlap: float = setting(0.25, help="Window overlap in [0, 1).")
    sw_batch_size: int = setting(4, help="Windows per forward pass.")
    blend_mode: BlendMode = setting("gaussian", help="How overlapping windows are weighted.")
    sw_device: str | None = setting(None, help="Where windows are stitched; `null` is `runtime.device`.")
    tta_flips: bool = setting(
        False,
        help="Average the softmax over flips of every combination of the axes training mirrored (`data.flip_axes`), "
        "nnU-Net's mirroring. Off by default, unlike nnU-Net: one network pass per flip for a gain below a hundredth "
        "of Dice on the recipes' validation cases (docs/performance.md); the recipes turn it on.",
        aliases=("--tta",),
    )
    min_component_size: int = setting(
        0,
        help="Remove connected components of a class with fewer voxels than this (0 keeps all): isolated "
        "false-positive "
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
        help="`slab` blends windows one slab at a time and takes each slab back to the source grid as "
        "`inversion` says, keeping only a `uint8` label map of the whole image (bounded memory; separable "
        "resampling); `full` is MONAI's `SlidingWindowInferer` over the whole image with `Spacingd`/`Invertd` "
        "(a float `classes x image` buffer; for comparison).",
    )
    inversion: Inversion = setting(
        "linear",
        help="How predictions return to the source grid: `linear` interpolates the class probabilities into the "
        "source grid slab by slab and takes the argmax there, as MONAI's `Invertd` recipes do (smoother where "
        "the source is finer; axis-aligned grids, else `labels`); `labels` takes the argmax in the network "
        "grid and maps the `uint8` labels back nearest-neighbour (a little faster).",
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
