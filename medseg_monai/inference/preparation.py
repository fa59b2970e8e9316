"""One image into the network grid: ``LoadImaged -> EnsureChannelFirstd -> Orientationd -> Spacingd ->
intensity``, the training chain, with separable resampling, and the foreground where windows will run.

On CT volumes only the part of the grid the windows read is resampled and normalised
(:mod:`~medseg_monai.inference.windows_only`). :meth:`ImagePreparation.prepare` is thread-safe: a batch
prepares the next case while the network runs on this one.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from medseg_monai.config import DataConfig, InputChecks
from medseg_monai.data.channels import Source, check_channels, check_image_channels, loader_input
from medseg_monai.inference.plan import InferencePlan
from medseg_monai.inference.windows_only import prepare_windows_only
from medseg_monai.io import recorded_warnings
from medseg_monai.keys import IMAGE
from medseg_monai.transforms.chains import build_infer_stages, build_infer_transforms
from medseg_monai.transforms.foreground import Foreground, find_foreground, foreground_mode
from medseg_monai.transforms.resampling import AxisAlignedSpacingd

__all__ = ["ImagePreparation", "PreparedImage"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """One image in the network grid, ready for the sliding window (:meth:`ImagePreparation.prepare`).

    ``image`` is ``(C, *grid)`` normalised; the affines map voxel indices of the grid and of the
    source to world coordinates; ``source_shape`` is the source's spatial shape; ``warnings`` are what
    the input checks said about the image (NaN voxels replaced, a constant image). ``source`` is the
    file, or the :class:`~medseg_monai.data.channels.ChannelCase` of several channel files; ``seconds`` is how
    long reading and preparing took (in whichever thread did it).
    """

    source: Source
    image: torch.Tensor
    region: Foreground | None
    grid_affine: np.ndarray
    source_affine: np.ndarray
    source_shape: tuple[int, ...]
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def geometry(self) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """``(grid_affine, source_affine, source_shape)``: the way back to the source grid."""
        return self.grid_affine, self.source_affine, self.source_shape


class ImagePreparation:
    """The transforms that bring images of a model's data into its network grid.

    ``transforms`` is the whole MONAI chain (``Spacingd``; whole-image stitching inverts it), ``lean_transforms``
    the same with separable resampling; :meth:`prepare` runs the latter in two stages, loading then normalisation.
    """

    def __init__(self, data: DataConfig, plan: InferencePlan, checks: InputChecks):
        self.data, self.plan = data, plan
        self.transforms = build_infer_transforms(data, checks)
        geometry, normalisation = build_infer_stages(data, checks)
        #: loading to the network grid (separable resampling) with the source's intensities, then normalisation
        self.geometry = Compose([AxisAlignedSpacingd.replaces(t) or t for t in geometry.transforms])
        self.normalisation = normalisation
        *loading, last = self.geometry.transforms  # with the lean resampling last: windows-only preparation may apply
        lean = isinstance(last, AxisAlignedSpacingd)
        self.loading, self.spacing = (Compose(loading), last) if lean else (self.geometry, None)
        self.lean_transforms = Compose([*self.geometry.transforms, *normalisation.transforms])

    def check_channels(self, source: Source, loaded: int | None = None) -> None:
        """Refuse an input without the model's channels: a case missing a channel file (before reading it), or, with
        ``loaded`` (the channels read), a single image of fewer channels than a model of named channels takes."""
        check_channels(source, self.data.in_channels, self.data.channel_names)
        if loaded is not None:
            check_image_channels(source, loaded, self.data.in_channels, self.data.channel_names)

    def prepare(self, source: Source) -> PreparedImage:
        """Read ``source`` into the network grid, normalised, with its foreground (where windows will run)."""
        start = time.perf_counter()
        self.check_channels(source)
        with recorded_warnings() as warnings:
            data = self.loading({IMAGE: loader_input(source)})  # in the network grid unless the lean resampling is next
            self.check_channels(source, int(data[IMAGE].shape[0]))
            found = None
            if self.spacing is not None:
                found = prepare_windows_only(data[IMAGE], self.plan, self.data, self.spacing.pixdim, self._normalised)
                if found is None:  # windows-only does not apply: the whole image
                    data = self.spacing(data)
        if found is None:
            region = self.find_foreground(data[IMAGE])  # on the raw intensities
            image = self.normalisation(data)[IMAGE]
        else:
            image, region = found
        return PreparedImage(
            source=source,
            image=image.as_tensor(),
            region=region,
            grid_affine=np.asarray(image.affine, dtype=np.float64),
            source_affine=np.asarray(image.meta["original_affine"], dtype=np.float64),
            source_shape=tuple(int(s) for s in np.asarray(image.meta["spatial_shape"]).ravel()),
            warnings=tuple(warnings),
            seconds=time.perf_counter() - start,
        )

    def _normalised(self, image: MetaTensor) -> MetaTensor:
        return self.normalisation({IMAGE: image})[IMAGE]

    def find_foreground(self, image: MetaTensor) -> Foreground | None:
        """Where to run windows in an image of the network grid before normalisation (``infer.foreground_crop``)."""
        plan, data = self.plan, self.data
        raw = image.as_tensor().detach().cpu().numpy() if isinstance(image, MetaTensor) else np.asarray(image)
        mode = foreground_mode(plan.foreground_crop, data.resolved_intensity, raw)
        spacing = np.sqrt((np.asarray(image.affine, dtype=np.float64)[: raw.ndim - 1, : raw.ndim - 1] ** 2).sum(axis=0))
        margin = plan.crop_margin_mm / spacing if data.image_dims == 3 else np.full(raw.ndim - 1, plan.crop_margin_mm)
        region = find_foreground(raw, mode, margin, plan.window_size(raw.shape[1:]))
        if region is not None:
            logger.debug(
                "foreground (%s): box %s, %.0f%% of the image to segment", mode, region.slices, 100 * region.fraction
            )
        return region
