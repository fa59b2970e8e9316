"""The choices and constants the settings share: ``Literal`` types of the fields, and defaults of sizes."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["CONFIG_VERSION", "DEFAULT_PATCH_SIZE", "INTENSITY_MODES", "OUTPUT_FORMATS", "SLICES_PER_WINDOW"]

CONFIG_VERSION = 2

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
#: slices in each window of a 2D network on volumes (one forward pass holds ``sw_batch_size`` windows of them)
SLICES_PER_WINDOW = 8
#: training patch (and sliding window) used when ``data.patch_size`` is not given
DEFAULT_PATCH_SIZE: dict[int, tuple[int, ...]] = {2: (128, 128), 3: (96, 96, 64)}
