"""The Predictor: a loaded model that turns one image into one mask in its source's format and geometry.

Shared by the ``medseg predict`` CLI, the Python API, the bundles and the recipes::

    predictor = Predictor.from_run("runs/liver")                  # config.json + checkpoints/best.pt
    mask = predictor.predict_image("scan.nii.gz")                  # label values in the source's voxel grid
    predictor.predict_file("scan.nii.gz", "masks/scan.nii.gz")     # ... written with the source's geometry

One image goes: read and prepared into the network grid (:mod:`~medseg_monai.inference.preparation`), through
the network over windows (:mod:`~medseg_monai.inference.windows`), stitched
(:mod:`~medseg_monai.inference.strategies`) into a merger that takes it back to the source grid
(:mod:`~medseg_monai.inference.mergers`), post-processed, turned into the mask values and written by
:func:`~medseg_monai.io.write_mask`. Every setting comes from the :class:`~medseg_monai.inference.plan.InferencePlan`
resolved once when the predictor is made. Folders are :func:`~medseg_monai.batch.run_batch`'s job.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_monai.config import InputChecks, RunConfig, RuntimeConfig
from medseg_monai.data.channels import ChannelCase, Source, as_source, geometry_source, source_mask_filename
from medseg_monai.errors import ConfigError, InputError
from medseg_monai.inference.inversion import SlabScoreInverter
from medseg_monai.inference.maps import GridMaps, MapRequest, PredictionMaps
from medseg_monai.inference.mergers import GridLabels, MergedPrediction
from medseg_monai.inference.plan import InferSettings, RuntimeSettings, resolve_plan
from medseg_monai.inference.preparation import ImagePreparation, PreparedImage
from medseg_monai.inference.stitching import SlabMerger
from medseg_monai.inference.strategies import stitching_for
from medseg_monai.inference.windows import WindowForward
from medseg_monai.io import RASTER_FORMATS, detect_format, write_mask
from medseg_monai.models.loading import LoadedModel, load_artefact_model, load_checkpoint_model, load_model
from medseg_monai.models.provenance import model_facts
from medseg_monai.transforms.foreground import Foreground
from medseg_monai.transforms.postprocessing import build_postprocessing
from medseg_monai.transforms.resampling import labels_to_source_grid

__all__ = ["InferSettings", "Predictor", "PreparedImage", "RuntimeSettings"]

logger = logging.getLogger(__name__)

#: what :meth:`Predictor.predict_image` takes: a file or DICOM folder, or a case of channel files
ImageInput = str | Path | ChannelCase | Sequence[str | Path]


class Predictor:
    """Sliding-window inference with a trained network and its run configuration.

    Args:
        network: a network built for ``config`` (weights loaded).
        config: the run configuration the network was trained with (resolved data fields).
        infer: inference settings: an :class:`~medseg_monai.config.InferConfig`, a mapping of changes to
            ``config.infer`` (``{"overlap": 0.5}``), or ``None`` for ``config.infer``.
        checks: how odd input images are handled (:class:`~medseg_monai.config.InputChecks`; ``None``: defaults).
        runtime: device, precision and layout: a :class:`~medseg_monai.config.RuntimeConfig`, a mapping of
            changes to ``config.runtime`` (``{"device": "cpu"}``), or ``None`` for the run's own.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: RunConfig,
        infer: InferSettings = None,
        checks: InputChecks | None = None,
        runtime: RuntimeSettings = None,
    ):
        self.config, self.plan = resolve_plan(config, infer, runtime)
        self.checks = checks or InputChecks()
        plan = self.plan
        self.network = network.to(plan.device, memory_format=plan.memory_format).eval()
        self.source: Path | None = None  # the checkpoint or exported file, when loaded from one
        self.preparation = ImagePreparation(self.config.data, plan, self.checks)
        self.window_forward = WindowForward(self.network, plan)
        self.stitching = stitching_for(plan, self.window_forward, self.num_classes, self.preparation.transforms)
        self._postprocess = build_postprocessing(
            self.num_classes,
            min_component_size=plan.min_component_size,
            keep_largest_component=plan.keep_largest_component,
            fill_holes=plan.fill_holes,
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_model(
        cls,
        model: LoadedModel,
        infer: InferSettings = None,
        checks: InputChecks | None = None,
        runtime: RuntimeSettings = None,
    ) -> Predictor:
        """Build from a :class:`~medseg_monai.models.loading.LoadedModel`; what its format fixes overrides
        ``runtime``."""
        predictor = cls(model.network, model.config, infer, checks, _with_fixed(runtime, model.fixed_runtime))
        if model.fixed_roi is not None and predictor.plan.roi_size != model.fixed_roi:
            raise ConfigError(
                f"{model.source}: an ONNX model takes its export's windows {list(model.fixed_roi)} only, "
                f"not {list(predictor.plan.roi_size)}"
            )
        predictor.source = model.source
        if model.fixed_runtime:  # an exported model: say in which arithmetic it runs
            dtype = predictor.plan.dtype
            arithmetic = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
            logger.info(
                "%s: exported model, runs in %s (runtime.precision=%s)",
                model.source, arithmetic, predictor.plan.runtime.precision,
            )  # fmt: skip
        return predictor

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        infer: InferSettings = None,
        config: RunConfig | None = None,
        checks: InputChecks | None = None,
        runtime: RuntimeSettings = None,
    ) -> Predictor:
        """Build from one checkpoint file; its embedded config is used unless ``config`` is given."""
        return cls.from_model(load_checkpoint_model(checkpoint, config), infer, checks, runtime)

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        checkpoint: str = "best",
        infer: InferSettings = None,
        checks: InputChecks | None = None,
        runtime: RuntimeSettings = None,
    ) -> Predictor:
        """Build from a run folder: ``checkpoint`` is ``best``, ``last`` or a file path; or from a checkpoint file
        or an exported model (:func:`~medseg_monai.models.loading.load_model`)."""
        return cls.from_model(load_model(run_dir, checkpoint), infer, checks, runtime)

    @classmethod
    def from_artefact(
        cls,
        path: str | Path,
        infer: InferSettings = None,
        checks: InputChecks | None = None,
        runtime: RuntimeSettings = None,
    ) -> Predictor:
        """Build from an exported model (``medseg export``: ``.onnx``, ``.ts``); it runs in float32, contiguous."""
        return cls.from_model(load_artefact_model(path), infer, checks, runtime)

    def with_infer(self, **changes: Any) -> Predictor:
        """The same network and weights with some inference settings changed (nothing is reloaded)."""
        return self._with(changes, None)

    def with_runtime(self, **changes: Any) -> Predictor:
        """The same network and weights with some runtime settings changed (``precision="bf16"``)."""
        return self._with(None, changes)

    def _with(self, infer: InferSettings, runtime: RuntimeSettings) -> Predictor:
        predictor = Predictor(self.network, self.config, infer, self.checks, runtime)
        predictor.source = self.source
        return predictor

    @property
    def num_classes(self) -> int:
        """Classes of the model, background included."""
        return self.config.data.num_classes

    @property
    def tta_passes(self) -> int:
        """Network passes per window: 1, or one per flip with ``tta_flips``."""
        return self.plan.tta_passes

    # ------------------------------------------------------------------ tensors
    @torch.inference_mode()
    def predict_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities of preprocessed images: ``(B, C_in, *spatial) -> (B, K, *spatial)``.

        With ``tta_flips`` the softmax is averaged over flips of every combination of the mirrored axes
        (per window with ``slab`` stitching, per image with ``full``). This holds the whole float
        output; :meth:`predict_labels` does not.
        """
        return self.stitching.probabilities(images)

    @torch.inference_mode()
    def predict_labels(self, image: torch.Tensor, foreground: Foreground | None = None) -> torch.Tensor:
        """Post-processed class indices of one preprocessed image ``(C_in, *spatial) -> (1, *spatial)``, CPU.

        ``uint8`` (``int64`` above 256 classes). With ``slab`` stitching no float map of the whole image is
        kept, and with a ``foreground`` only the windows covering its box that hold foreground run (the rest
        of the image is background).
        """
        return self._postprocessed(self.stitching.labels(image, foreground))

    def _postprocessed(self, labels: torch.Tensor) -> torch.Tensor:  # (1, *spatial) labels: components, holes
        for step in self._postprocess:
            labels = torch.as_tensor(step(labels)).to(labels.dtype)
        return labels

    # ------------------------------------------------------------------ images
    def predict_image(self, path: ImageInput) -> np.ndarray:
        """Label map of one image file or DICOM folder (or case of channel files), in the source's voxel grid.

        Returns an integer array (``uint8``, ``uint16`` for values above 255) in the reader's index
        order, ``(H, W)`` or ``(X, Y, Z)``, whose values are the training masks' label values.
        """
        if self.stitching.prepares_ahead:
            return self.predict_prepared(self.prepare(path))
        source = as_source(path)
        self.preparation.check_channels(source)
        with torch.inference_mode():
            classes = self.stitching.source_classes(source, self._postprocessed)
        return self._value_table(source)[classes]

    def prepare(self, path: ImageInput) -> PreparedImage:
        """Read one image (a file, a DICOM folder, or a case of one file per channel) into the network grid,
        normalised, with its foreground; thread-safe (:class:`~medseg_monai.inference.preparation.ImagePreparation`)."""
        return self.preparation.prepare(as_source(path))

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
        request.check_stitching(self.plan.stitching, self.stitching.writes_maps)
        merged = self._merged(prepared, request)
        labels = self._postprocessed(torch.from_numpy(merged.labels)[None])[0].numpy()
        classes = labels if merged.on_source_grid else labels_to_source_grid(labels, *prepared.geometry)
        return PredictionMaps(self._value_table(prepared.source)[classes], merged.probabilities, merged.entropy)

    @torch.inference_mode()
    def _merged(self, prepared: PreparedImage, request: MapRequest) -> MergedPrediction:
        """Stitch ``prepared`` into the merger its inversion and ``request`` need, and finish it."""
        merger = self._merger(prepared, request)
        self.stitching.run(prepared.image, merger, prepared.region)
        merged = merger.finalize()
        if isinstance(merged, torch.Tensor):  # grid labels alone
            return MergedPrediction(merged[0].numpy(), on_source_grid=False)
        return merged

    def _merger(self, prepared: PreparedImage, request: MapRequest) -> SlabMerger:
        """Linear inversion into the source grid (axis-aligned grids), else the network grid's labels and maps."""
        spatial = tuple(int(s) for s in prepared.image.shape[1:])
        axis = self.stitching.slab_axis(spatial)
        box = None if prepared.region is None else prepared.region.slices
        scores = self.plan.window_scores
        if self.plan.inversion == "linear":
            try:
                return SlabScoreInverter(
                    *prepared.geometry, spatial, axis, scores, box=box, request=request, num_classes=self.num_classes
                )
            except ValueError as err:
                logger.info("%s: %s; labels are mapped back nearest-neighbour", prepared.source, err)
        if request.any:
            return GridMaps(spatial, axis, scores, request, self.num_classes, prepared.geometry, box)
        return GridLabels(spatial, axis, self.num_classes, box)

    # ------------------------------------------------------------------ outputs
    def output_values(self, source: str | Path | Source) -> tuple[int, ...]:
        """Value written for each class: the training masks' values; 0/255 for binary raster masks."""
        label_values = tuple(self.config.data.label_values)
        fmt = self.plan.output_format or detect_format(geometry_source(as_source(source)))
        if fmt in RASTER_FORMATS and len(label_values) == 2:
            return (0, 255)
        return label_values

    def _value_table(self, source: str | Path | Source) -> np.ndarray:
        values = np.asarray(self.output_values(source), dtype=np.int64)
        if values.min() >= 0 and values.max() <= np.iinfo(np.uint16).max:
            return values.astype(np.uint8 if values.max() <= np.iinfo(np.uint8).max else np.uint16)
        return values  # write_mask names the out-of-range value

    def label_names(self, source: str | Path | Source) -> dict[int, str]:
        """Name of each output value for ``source`` (empty when the config has no names)."""
        return dict(zip(self.output_values(source), self.config.data.label_names or ()))

    def mask_path(self, source: str | Path | Source, output_dir: str | Path) -> Path:
        """Where the mask of ``source`` goes in ``output_dir``: its name (a case's ``NAME``) in the mask format."""
        return Path(output_dir) / source_mask_filename(as_source(source), self.plan.output_format)

    def save_mask(self, mask: np.ndarray, source: str | Path | Source, output: str | Path) -> Path:
        """Write ``mask`` (from :meth:`predict_image`) with the geometry of ``source`` (channel 0 of a case) and its
        label names beside it. Returns the path written (``.mhd``/``.nhdr`` outputs become ``.mha``/``.nrrd``)."""
        names = self.label_names(source)
        geometry = geometry_source(as_source(source))
        return write_mask(mask, geometry, output, output_format=self.plan.output_format, label_names=names or None)

    def predict_file(self, source: ImageInput, output: str | Path) -> Path:
        """Predict one image file (or DICOM folder, or case of channel files) and write its mask to the file
        ``output`` (see :meth:`mask_path` for the usual name in a folder); errors are raised."""
        if Path(output).is_dir():
            raise InputError(
                f"{output}: a folder; predict_file writes one mask file (its name: predictor.mask_path(source, folder))"
            )
        source = as_source(source)
        return self.save_mask(self.predict_image(source), source, output)

    def describe(self) -> dict[str, Any]:
        """Model, configuration and device facts for the run manifest (:func:`~medseg_monai.models.model_facts`)."""
        return model_facts(self.network, self.config, self.source, self.plan.device, self.plan.stitch_device)


def _with_fixed(runtime: RuntimeSettings, fixed: Mapping[str, Any]) -> RuntimeSettings:
    """``runtime`` with the settings a model's format fixes (an exported model: float32, contiguous)."""
    if not fixed:
        return runtime
    if isinstance(runtime, RuntimeConfig):
        return dataclasses.replace(runtime, **fixed)
    return {**(runtime or {}), **fixed}
