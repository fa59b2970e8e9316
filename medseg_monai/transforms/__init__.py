"""MONAI transforms and transform chains: loading, reorientation, spacing, intensity, label values,
slices of volumes for 2D/2.5D networks, the foreground to segment, and post-processing of label maps."""

from medseg_monai.transforms.chains import (
    IntensityWindowd,
    MapLabelValuesd,
    MatchChannelsd,
    build_infer_stages,
    build_infer_transforms,
    build_preprocessing,
    build_train_transforms,
    build_val_transforms,
)
from medseg_monai.transforms.foreground import Foreground, find_foreground, foreground_mode, map_foreground
from medseg_monai.transforms.postprocessing import RemoveSmallComponents, build_postprocessing
from medseg_monai.transforms.resampling import AxisAlignedSpacingd, labels_to_source_grid, lean_spacing, spacing_plan
from medseg_monai.transforms.slicing import ContextChannelsd, SlicesToChannelsd, in_plane_axes, stack_context

__all__ = [
    "AxisAlignedSpacingd",
    "ContextChannelsd",
    "Foreground",
    "IntensityWindowd",
    "MapLabelValuesd",
    "MatchChannelsd",
    "RemoveSmallComponents",
    "SlicesToChannelsd",
    "build_infer_stages",
    "build_infer_transforms",
    "build_postprocessing",
    "build_preprocessing",
    "build_train_transforms",
    "build_val_transforms",
    "find_foreground",
    "foreground_mode",
    "in_plane_axes",
    "labels_to_source_grid",
    "lean_spacing",
    "map_foreground",
    "spacing_plan",
    "stack_context",
]
