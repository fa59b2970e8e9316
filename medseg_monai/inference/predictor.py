"""The Predictor: load a model once, turn one image into one mask in its source's format and geometry.

Shared by the ``medseg predict`` CLI, the Python API, the bundles and the recipes::

    predictor = Predictor.from_run("runs/liver")                  # config.json + checkpoints/best.pt
    mask = predictor.predict_image("scan.nii.gz")                  # label values in the source's voxel grid
    predictor.predict_file("scan.nii.gz", "masks/scan.nii.gz")     # ... written with the source's geometry

One image goes ``LoadImaged -> EnsureChannelFirstd -> Orientationd -> Spacingd -> intensity`` (the training
chain; on CT volumes only where the windows read, :mod:`~medseg_monai.inference.windows_only`), through the
sliding window, to class indices, back to the source grid, to the mask values, and into
:func:`~medseg_monai.io.write_mask`. With ``infer.stitching="slab"`` (default) windows are blended a slab
at a time (:mod:`~medseg_monai.inference.stitching`) and resampling is separable; ``"full"`` runs MONAI's
``SlidingWindowInferer`` and ``Invertd`` on the whole image. Folders are :func:`~medseg_monai.batch.runner.run_batch`'s job.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import Compose, Invertd

from medseg_monai.config import SLICES_PER_WINDOW, InferConfig, InputChecks, RunConfig, replace_fields
from medseg_monai.data.channels import (
    ChannelCase,
    Source,
    as_source,
    check_channels,
    check_image_channels,
    geometry_source,
    loader_input,
    source_mask_filename,
)
from medseg_monai.errors import CheckpointError, ConfigError, InputError
from medseg_monai.inference.inversion import SlabScoreInverter
from medseg_monai.inference.maps import GridMaps, MapRequest, PredictionMaps
from medseg_monai.inference.stitching import argmax_classes, slab_axis, sliding_window_stitch
from medseg_monai.inference.windows_only import prepare_windows_only
from medseg_monai.io import RASTER_FORMATS, detect_format, recorded_warnings, write_mask
from medseg_monai.keys import IMAGE, PRED
from medseg_monai.models.checkpoint import load_checkpoint
from medseg_monai.models.provenance import model_facts
from medseg_monai.networks import SliceWindowNetwork, build_network
from medseg_monai.networks.precision import autocast, resolve_memory_format, resolve_precision
from medseg_monai.transforms.chains import build_infer_stages, build_infer_transforms
from medseg_monai.transforms.foreground import Foreground, find_foreground, foreground_mode
from medseg_monai.transforms.postprocessing import build_postprocessing
from medseg_monai.transforms.resampling import AxisAlignedSpacingd, labels_to_source_grid
from medseg_monai.transforms.slicing import in_plane_axes, stack_context
from medseg_monai.utils import resolve_device

__all__ = ["InferSettings", "PreparedImage", "Predictor"]

logger = logging.getLogger(__name__)

#: inference settings for a loaded model: a whole :class:`InferConfig`, or field changes to the trained one
InferSettings = InferConfig | Mapping[str, Any] | None


def _infer_for(config: RunConfig, infer: InferSettings) -> InferConfig:
    if infer is None:
        return config.infer
    if isinstance(infer, InferConfig):
        return infer
    try:
        return replace_fields(config.infer, infer, "infer")
    except TypeError as err:  # a value of the wrong shape, e.g. a number where a list belongs
        raise ConfigError(str(err)) from None


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """One image in the network grid, ready for the sliding window (:meth:`Predictor.prepare`).

    ``image`` is ``(C, *grid)`` normalised; the affines map voxel indices of the grid and of the
    source to world coordinates; ``source_shape`` is the source's spatial shape; ``warnings`` are what
    the input checks said about the image (NaN voxels replaced, a constant image). ``source`` is the
    file, or the :class:`~medseg_monai.data.channels.ChannelCase` of several channel files.
    """

    source: Source
    image: torch.Tensor
    region: Foreground | None
    grid_affine: np.ndarray
    source_affine: np.ndarray
    source_shape: tuple[int, ...]
    warnings: tuple[str, ...] = ()


class Predictor:
    """Sliding-window inference with a trained network and its run configuration.

    Args:
        network: a network built for ``config`` (weights loaded).
        config: the run configuration the network was trained with (resolved data fields).
        infer: inference settings: an :class:`InferConfig`, a mapping of changes to ``config.infer``
            (``{"overlap": 0.5}``), or ``None`` for ``config.infer``.
        checks: how odd input images are handled (:class:`~medseg_monai.config.InputChecks`; ``None``: defaults).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: RunConfig,
        infer: InferSettings = None,
        checks: InputChecks | None = None,
    ):
        self.config = dataclasses.replace(config, infer=_infer_for(config, infer))
        self.checks = checks or InputChecks()
        infer = self.config.infer
        self.device = resolve_device(infer.device)
        self.stitch_device = resolve_device(infer.sw_device) if infer.sw_device else self.device
        self.dtype = resolve_precision(infer.precision, self.device)
        self.memory_format = resolve_memory_format(
            infer.memory_format, self.config.data.spatial_dims, self.config.model.name
        )
        self.network = network.to(self.device, memory_format=self.memory_format).eval()
        self._window_format = self.memory_format if self.config.data.slice_axis is None else torch.contiguous_format
        self._slice_network: SliceWindowNetwork | None = None
        self.source: Path | None = None  # checkpoint file, when loaded from one
        self.transforms = build_infer_transforms(self.config.data, self.checks)
        geometry, normalisation = build_infer_stages(self.config.data, self.checks)
        #: loading to the network grid (separable resampling) with the source's intensities, then normalisation
        self.geometry = Compose([AxisAlignedSpacingd.replaces(t) or t for t in geometry.transforms])
        self.normalisation = normalisation
        *loading, last = self.geometry.transforms  # with the lean resampling last: windows-only preparation may apply
        self._loading, self._spacing = (
            (Compose(loading), last) if isinstance(last, AxisAlignedSpacingd) else (self.geometry, None)
        )
        self.lean_transforms = Compose([*self.geometry.transforms, *normalisation.transforms])
        self.inferer = SlidingWindowInferer(
            roi_size=self.config.window_size(),
            sw_batch_size=infer.sw_batch_size,
            overlap=self.config.window_overlap,
            mode=infer.blend_mode,
            sw_device=self.device,
            device=self.stitch_device,
        )
        self.invert = Invertd(
            keys=PRED, transform=self.transforms, orig_keys=IMAGE, nearest_interp=True, to_tensor=True
        )
        self._postprocess = build_postprocessing(infer, self.config.data.num_classes)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        infer: InferSettings = None,
        config: RunConfig | None = None,
        checks: InputChecks | None = None,
    ) -> Predictor:
        """Build from one checkpoint file; its embedded config is used unless ``config`` is given."""
        payload = load_checkpoint(checkpoint)
        if config is None:
            if "config" not in payload:
                raise CheckpointError(f"{checkpoint}: checkpoint carries no config; pass the run's config.json")
            config = RunConfig.from_dict(payload["config"])
        network = build_network(config, load_pretrained=False)
        try:
            network.load_state_dict(payload["network"])
        except RuntimeError as err:
            details = [line.strip() for line in str(err).strip().splitlines()[1:] if line.strip()]
            first = details[0] if details else str(err).strip().splitlines()[0]
            raise CheckpointError(
                f"{checkpoint}: weights do not fit network {config.model.name!r} "
                f"with options {dict(config.model.options)} ({first[:200]})"
            ) from None
        predictor = cls(network, config, infer, checks)
        predictor.source = Path(checkpoint)
        return predictor

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        checkpoint: str = "best",
        infer: InferSettings = None,
        checks: InputChecks | None = None,
    ) -> Predictor:
        """Build from a run folder: ``checkpoint`` is ``best``, ``last`` or a file path; or from an exported model."""
        if str(run_dir).lower().endswith((".onnx", ".ts")) and not Path(run_dir).is_dir():  # medseg export's file
            return cls.from_artefact(run_dir, infer, checks)
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            if run_dir.is_file():
                return cls.from_checkpoint(run_dir, infer, checks=checks)
            raise FileNotFoundError(f"{run_dir}: model folder not found")
        path = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.pt"
        config_path = run_dir / "config.json"
        config = RunConfig.load(config_path) if config_path.is_file() else None
        return cls.from_checkpoint(path, infer, config, checks)

    @classmethod
    def from_artefact(
        cls, path: str | Path, infer: InferSettings = None, checks: InputChecks | None = None
    ) -> Predictor:
        """Build from an exported model (``medseg export``: ``.onnx``, ``.ts``); it runs in float32, contiguous."""
        from medseg_monai.models.artefact import load_artefact

        network, config = load_artefact(path)
        fixed = {"precision": "fp32", "memory_format": "contiguous"}  # as exported
        infer = dataclasses.replace(infer, **fixed) if isinstance(infer, InferConfig) else {**(infer or {}), **fixed}
        predictor = cls(network, config, infer, checks)
        if Path(path).suffix.lower() == ".onnx" and tuple(predictor.config.roi_size) != tuple(config.roi_size):
            raise ConfigError(
                f"{path}: an ONNX model takes its export's windows {list(config.roi_size)} only, not {list(predictor.config.roi_size)}"
            )
        predictor.source = Path(path)
        return predictor

    def with_infer(self, **changes: Any) -> Predictor:
        """The same network and weights with some inference settings changed (nothing is reloaded)."""
        predictor = Predictor(self.network, self.config, changes, self.checks)
        predictor.source = self.source
        return predictor

    @property
    def window_network(self) -> torch.nn.Module:
        """What runs on each window: :attr:`network`, or for a 2D network on volumes that network over the
        slices of 3D windows (:class:`~medseg_monai.networks.SliceWindowNetwork`)."""
        axis = self.config.data.slice_axis
        if axis is None:
            return self.network
        if self._slice_network is None or self._slice_network.network is not self.network:
            self._slice_network = SliceWindowNetwork(self.network, axis, self.memory_format)
        return self._slice_network

    # ------------------------------------------------------------------ tensors
    def _flips(self) -> list[tuple[int, ...]]:
        """Tensor dims to flip for each test-time pass: every subset of the axes training mirrored."""
        if not self.config.infer.tta_flips:
            return [()]
        data = self.config.data
        axes = data.mirror_axes
        if data.slice_axis is not None:  # the 2D network's axes are the in-plane axes of the volume's windows
            axes = tuple(in_plane_axes(data.slice_axis)[a] for a in axes)
        return [tuple(a + 2 for i, a in enumerate(axes) if mask >> i & 1) for mask in range(2 ** len(axes))]

    tta_passes = property(
        lambda self: len(self._flips()), doc="Network passes per window: 1, or one per flip with ``tta_flips``."
    )

    def _window_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network output for a batch of windows: logits, or with ``tta_flips`` the mean softmax over flips (the softmax
        alone when training mirrored no axis)."""
        x = x.contiguous(memory_format=self._window_format)
        with autocast(self.device, self.dtype):
            flips = self._flips()
            if not self.config.infer.tta_flips:
                return _first(self.window_network(x)).float()
            total = None
            for axes in flips:
                probs = torch.softmax(_first(self.window_network(torch.flip(x, axes) if axes else x)).float(), dim=1)
                probs = torch.flip(probs, axes) if axes else probs
                total = probs if total is None else total.add_(probs)
            return total / len(flips)

    def _window_roi(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Window size for an image of ``spatial`` shape (network grid); a 2D network's windows are at most as deep as the volume."""
        axis = self.config.data.slice_axis
        return self.config.window_size(
            SLICES_PER_WINDOW if axis is None else min(SLICES_PER_WINDOW, int(spatial[axis]))
        )

    def _slab_axis(self, spatial: Sequence[int]) -> int:
        roi = self._window_roi(spatial)
        return slab_axis([max(int(s), r) for s, r in zip(spatial, roi)], roi)

    def _network_input(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, *spatial)`` as the windows see it: a 2.5D network's context slices stacked as channels."""
        data = self.config.data
        if data.slice_axis is None or not data.context_slices:
            return image
        return stack_context(image, data.slice_axis, data.context_slices)

    def _stitch(self, image: torch.Tensor, sink: Any, foreground: Foreground | None = None) -> None:
        infer = self.config.infer
        spatial = image.shape[1:]
        sliding_window_stitch(
            self._network_input(image),
            self._window_forward,
            sink,
            self._window_roi(spatial),
            overlap=self.config.window_overlap,
            sw_batch_size=infer.sw_batch_size,
            mode=infer.blend_mode,
            device=self.device,
            stitch_device=self.stitch_device,
            axis=self._slab_axis(spatial),
            region=None if foreground is None else foreground.slices,
            foreground=None if foreground is None else torch.from_numpy(foreground.mask),
            logits=not infer.tta_flips,
        )

    @torch.inference_mode()
    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities of preprocessed images: ``(B, C_in, *spatial) -> (B, K, *spatial)``.

        With ``tta_flips`` the softmax is averaged over flips of every combination of the mirrored axes
        (per window with ``slab`` stitching, per image with ``full``). This holds the whole float
        output; :meth:`predict_labels` does not.
        """
        if self.config.infer.stitching == "full":
            return self._predict_logits_full(image)
        tta = self.config.infer.tta_flips
        outputs = []
        for item in image:
            axis = self._slab_axis(item.shape[1:])
            probs: list[torch.Tensor] = []

            def sink(start: int, stop: int, block: torch.Tensor) -> None:
                if not probs:
                    probs.append(
                        torch.empty((block.shape[0], *item.shape[1:]), dtype=torch.float32, device=block.device)
                    )
                probs[0].movedim(axis + 1, 1)[:, start:stop] = block if tta else torch.softmax(block, dim=0)

            self._stitch(item, sink)
            outputs.append(probs[0])
        return torch.stack(outputs)

    def _predict_logits_full(self, image: torch.Tensor) -> torch.Tensor:
        image = torch.stack([self._network_input(item) for item in image.to(self.device)])
        total = None
        flips = self._flips()
        for axes in flips:
            x = torch.flip(image, axes) if axes else image
            with autocast(self.device, self.dtype):
                probs = torch.softmax(self.inferer(x, self.window_network).float(), dim=1)
            probs = torch.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        return total / len(flips)

    @torch.inference_mode()
    def predict_labels(self, image: torch.Tensor, foreground: Foreground | None = None) -> torch.Tensor:
        """Class-index map of one preprocessed image ``(C_in, *spatial) -> (1, *spatial)`` on the CPU.

        ``uint8`` (``int64`` above 255 classes). With ``slab`` stitching no float map of the whole
        image is kept; post-processing (largest component, hole filling) runs on the label map. With a
        ``foreground`` (:meth:`find_foreground`) only the windows covering its box that hold foreground
        run, and the rest of the image is background (``slab`` stitching only).
        """
        if self.config.infer.stitching == "full":
            labels = self._predict_logits_full(image[None])[0].argmax(dim=0, keepdim=True)
        else:
            spatial = tuple(int(s) for s in image.shape[1:])
            dtype = torch.uint8 if self.config.data.num_classes <= 256 else torch.int64
            labels = torch.empty((1, *spatial), dtype=dtype)
            view = labels[0].movedim(self._slab_axis(spatial), 0)

            def sink(start: int, stop: int, block: torch.Tensor) -> None:
                view[start:stop] = argmax_classes(block, dtype).cpu()

            self._stitch(image, sink, foreground)
            if foreground is not None:  # background outside the box
                outside = torch.ones(spatial, dtype=torch.bool)
                outside[foreground.slices] = False
                labels[0][outside] = 0
        return self._postprocessed(labels.cpu())

    # ------------------------------------------------------------------ files
    def predict_image(self, path: str | Path | ChannelCase | Sequence[str | Path]) -> np.ndarray:
        """Label map of one image file or DICOM folder (or case of channel files), in the source's voxel grid.

        Returns an integer array (``uint8``, ``uint16`` for values above 255) in the reader's index
        order, ``(H, W)`` or ``(X, Y, Z)``, whose values are the training masks' label values.
        """
        if self.config.infer.stitching == "full":
            source = as_source(path)
            self.check_channels(source)
            return self._value_table(source)[self._classes_full(source)]
        return self.predict_prepared(self.prepare(path))

    def check_channels(self, source: Source, loaded: int | None = None) -> None:
        """Refuse an input without the model's channels: a case missing a channel file (before reading it), or, with
        ``loaded`` (the channels read), a single image of fewer channels than a model of named channels takes."""
        data = self.config.data
        check_channels(source, data.in_channels, data.channel_names)
        if loaded is not None:
            check_image_channels(source, loaded, data.in_channels, data.channel_names)

    def prepare(self, path: str | Path | ChannelCase | Sequence[str | Path]) -> PreparedImage:
        """Read one image (or a case of one file per channel, a :class:`~medseg_monai.data.channels.ChannelCase` or a list
        of files) into the network grid, normalised, with its foreground (``slab`` stitching).

        Thread-safe: :func:`~medseg_monai.batch.runner.run_batch` prepares the next case while the
        network runs on this one.
        """
        source = as_source(path)
        self.check_channels(source)
        with recorded_warnings() as warnings:
            data = self._loading(
                {IMAGE: loader_input(source)}
            )  # in the network grid unless the lean resampling is to come
            self.check_channels(source, int(data[IMAGE].shape[0]))
            found = (
                None
                if self._spacing is None
                else prepare_windows_only(
                    data[IMAGE],
                    self.config,
                    self._spacing.pixdim,
                    self._window_roi,
                    lambda x: self.normalisation({IMAGE: x})[IMAGE],
                )
            )
            if self._spacing is not None and found is None:  # windows-only does not apply: the whole image
                data = self._spacing(data)
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
        )

    def predict_prepared(self, prepared: PreparedImage) -> np.ndarray:
        """:meth:`predict_image` of an image from :meth:`prepare`."""
        return self.predict_maps(prepared).mask

    def predict_maps(self, prepared: PreparedImage, request: MapRequest | None = None) -> PredictionMaps:
        """The mask of an image from :meth:`prepare` and, as ``request`` asks, its class probabilities and
        predictive entropy, all in the source grid (``slab`` stitching only).

        The maps come from the probabilities the mask is the argmax of (before post-processing), through the
        same inversion: interpolated with ``inversion="linear"`` on axis-aligned grids, else nearest-neighbour.
        """
        request = request or MapRequest()
        request.check_stitching(self.config.infer.stitching)
        found = self._linear_classes(prepared, request) if self.config.infer.inversion == "linear" else None
        if found is not None:
            classes, probs, entropy = found
        elif request.any:
            classes, probs, entropy = self._grid_maps(prepared, request)
        else:
            labels = self.predict_labels(prepared.image, prepared.region)[0].numpy()
            classes = labels_to_source_grid(labels, prepared.grid_affine, prepared.source_affine, prepared.source_shape)
            probs = entropy = None
        return PredictionMaps(self._value_table(prepared.source)[classes], probs, entropy)

    def _postprocessed(self, labels: torch.Tensor) -> torch.Tensor:  # (1, *spatial) labels: largest component, holes
        for step in self._postprocess:
            labels = torch.as_tensor(step(labels)).to(labels.dtype)
        return labels

    @torch.inference_mode()
    def _linear_classes(self, prepared: PreparedImage, request: MapRequest) -> tuple[np.ndarray, Any, Any] | None:
        """Source-grid classes (and maps) by linear interpolation of the probabilities; ``None`` for oblique grids."""
        spatial = tuple(int(s) for s in prepared.image.shape[1:])
        axis = self._slab_axis(spatial)
        try:
            inverter = SlabScoreInverter(
                prepared.grid_affine,
                prepared.source_affine,
                prepared.source_shape,
                spatial,
                axis,
                probabilities=bool(self.config.infer.tta_flips),
                box=None if prepared.region is None else prepared.region.slices,
                request=request,
                num_classes=self.config.data.num_classes,
            )
        except ValueError as err:
            logger.info("%s: %s; labels are mapped back nearest-neighbour", prepared.source, err)
            return None
        self._stitch(prepared.image, inverter, prepared.region)
        return (self._postprocessed(torch.from_numpy(inverter.result())[None])[0].numpy(), *inverter.maps())

    @torch.inference_mode()
    def _grid_maps(self, prepared: PreparedImage, request: MapRequest) -> tuple[np.ndarray, Any, Any]:
        """Labels and maps in the network grid, then nearest-neighbour into the source grid (oblique grids)."""
        spatial = tuple(int(s) for s in prepared.image.shape[1:])
        sink = GridMaps(
            spatial,
            self._slab_axis(spatial),
            bool(self.config.infer.tta_flips),
            request,
            self.config.data.num_classes,
            None if prepared.region is None else prepared.region.slices,
        )
        self._stitch(prepared.image, sink, prepared.region)
        sink.background_outside()
        labels = self._postprocessed(torch.from_numpy(sink.labels)[None])[0].numpy()
        classes = labels_to_source_grid(labels, prepared.grid_affine, prepared.source_affine, prepared.source_shape)
        return (classes, *sink.to_source(prepared.grid_affine, prepared.source_affine, prepared.source_shape))

    def find_foreground(self, image: MetaTensor) -> Foreground | None:
        """Where to run windows in an image of the network grid before normalisation (``infer.foreground_crop``)."""
        infer, data = self.config.infer, self.config.data
        raw = image.as_tensor().detach().cpu().numpy() if isinstance(image, MetaTensor) else np.asarray(image)
        mode = foreground_mode(infer.foreground_crop, data.resolved_intensity, raw)
        spacing = np.sqrt((np.asarray(image.affine, dtype=np.float64)[: raw.ndim - 1, : raw.ndim - 1] ** 2).sum(axis=0))
        margin = infer.crop_margin_mm / spacing if data.image_dims == 3 else np.full(raw.ndim - 1, infer.crop_margin_mm)
        region = find_foreground(raw, mode, margin, self._window_roi(raw.shape[1:]))
        if region is not None:
            logger.debug(
                "foreground (%s): box %s, %.0f%% of the image to segment", mode, region.slices, 100 * region.fraction
            )
        return region

    def _classes_full(self, path: Source) -> np.ndarray:
        data = self.transforms({IMAGE: loader_input(as_source(path))})
        image = data[IMAGE]
        labels = self.predict_labels(image)
        data[PRED] = MetaTensor(
            labels.to(torch.float32), meta=dict(image.meta), applied_operations=list(image.applied_operations)
        )
        inverted = self.invert(data)[PRED] if image.applied_operations else data[PRED]
        return torch.as_tensor(inverted).round().to(torch.int64)[0].numpy()

    def output_values(self, source: str | Path | Source) -> tuple[int, ...]:
        """Value written for each class: the training masks' values; 0/255 for binary raster masks."""
        label_values = tuple(self.config.data.label_values)
        fmt = self.config.infer.output_format or detect_format(geometry_source(as_source(source)))
        if fmt in RASTER_FORMATS and len(label_values) == 2:
            return (0, 255)
        return label_values

    def _value_table(self, source: str | Path) -> np.ndarray:
        values = np.asarray(self.output_values(source), dtype=np.int64)
        if values.min() >= 0 and values.max() <= np.iinfo(np.uint16).max:
            return values.astype(np.uint8 if values.max() <= np.iinfo(np.uint8).max else np.uint16)
        return values  # write_mask names the out-of-range value

    def label_names(self, source: str | Path | Source) -> dict[int, str]:
        """Name of each output value for ``source`` (empty when the config has no names)."""
        return dict(zip(self.output_values(source), self.config.data.label_names or ()))

    def mask_path(self, source: str | Path | Source, output_dir: str | Path) -> Path:
        """Where the mask of ``source`` goes in ``output_dir``: the source's name (a case's ``NAME``) in the mask format."""
        return Path(output_dir) / source_mask_filename(as_source(source), self.config.infer.output_format)

    def save_mask(self, mask: np.ndarray, source: str | Path | Source, output: str | Path) -> Path:
        """Write ``mask`` (from :meth:`predict_image`) with the geometry of ``source`` (channel 0 of a case) and its
        label names beside it.

        Returns the path written (``.mhd``/``.nhdr`` outputs become one-file ``.mha``/``.nrrd``).
        """
        names = self.label_names(source)
        return write_mask(
            mask,
            geometry_source(as_source(source)),
            output,
            output_format=self.config.infer.output_format,
            label_names=names or None,
        )

    def predict_file(self, source: str | Path | Source | Sequence[str | Path], output: str | Path) -> Path:
        """Predict one image file (or DICOM folder, or case of channel files) and write its mask to the file ``output``;
        errors are raised.

        ``output`` names the mask file (see :meth:`mask_path` for the usual name in a folder).
        """
        if Path(output).is_dir():
            raise InputError(
                f"{output}: a folder; predict_file writes one mask file (its name: predictor.mask_path(source, folder))"
            )
        source = as_source(source)
        return self.save_mask(self.predict_image(source), source, output)

    # ------------------------------------------------------------------ provenance
    def describe(self) -> dict[str, Any]:
        """Model, configuration and device facts for the run manifest (:func:`~medseg_monai.models.provenance.model_facts`)."""
        return model_facts(self.network, self.config, self.source, self.device, self.stitch_device)


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (list, tuple)) else output
