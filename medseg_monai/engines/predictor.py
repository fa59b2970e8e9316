"""The Predictor: load a model once, turn images into masks in their source's format and geometry.

Shared by the ``medseg predict`` CLI, the Python API and the bundles::

    predictor = Predictor.from_run("runs/liver")           # config.json + checkpoints/best.pt
    results = predictor.predict("scans/", "masks/")         # a file, a folder, a glob, a list
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import FillHoles, Invertd, KeepLargestConnectedComponent

from medseg_monai.config import InferConfig, RunConfig
from medseg_monai.data.datalist import collect_inputs
from medseg_monai.data.transforms import build_infer_transforms
from medseg_monai.engines.checkpoint import load_checkpoint
from medseg_monai.engines.train import build_network
from medseg_monai.io import RASTER_FORMATS, detect_format, mask_filename, write_mask
from medseg_monai.keys import IMAGE, PRED
from medseg_monai.utils import error_message, resolve_device

__all__ = ["CaseResult", "Predictor"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """Outcome of one input: ``status`` is ``written``, ``skipped`` (output existed) or ``failed``."""

    input: Path
    output: Path | None
    status: str
    error: str | None = None
    seconds: float = 0.0
    label_counts: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class Predictor:
    """Sliding-window inference with a trained network and its run configuration.

    Args:
        network: a network built for ``config`` (weights loaded).
        config: the run configuration the network was trained with (resolved data fields).
        infer: inference settings; defaults to ``config.infer``.
    """

    def __init__(self, network: torch.nn.Module, config: RunConfig, infer: InferConfig | None = None):
        self.config = config if infer is None else dataclasses.replace(config, infer=infer)
        infer = self.config.infer
        self.device = resolve_device(infer.device)
        self.network = network.to(self.device).eval()
        self.transforms = build_infer_transforms(self.config.data)
        self.inferer = SlidingWindowInferer(
            roi_size=self.config.roi_size,
            sw_batch_size=infer.sw_batch_size,
            overlap=infer.overlap,
            mode=infer.blend_mode,
            sw_device=self.device,
            device=resolve_device(infer.sw_device) if infer.sw_device else self.device,
        )
        self.invert = Invertd(keys=PRED, transform=self.transforms, orig_keys=IMAGE, nearest_interp=True, to_tensor=True)
        foreground = list(range(1, self.config.data.num_classes))
        self._postprocess = []
        if infer.keep_largest_component:
            self._postprocess.append(KeepLargestConnectedComponent(applied_labels=foreground, is_onehot=False, independent=True))
        if infer.fill_holes:
            self._postprocess.append(FillHoles(applied_labels=foreground))

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, infer: InferConfig | None = None, config: RunConfig | None = None) -> Predictor:
        """Build from one checkpoint file; its embedded config is used unless ``config`` is given."""
        payload = load_checkpoint(checkpoint)
        if config is None:
            if "config" not in payload:
                raise ValueError(f"{checkpoint}: checkpoint carries no config; pass the run's config.json")
            config = RunConfig.from_dict(payload["config"])
        network = build_network(config, load_pretrained=False)
        try:
            network.load_state_dict(payload["network"])
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0]
            raise ValueError(f"{checkpoint}: weights do not fit network {config.model.name!r} ({first_line})") from None
        return cls(network, config, infer)

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", infer: InferConfig | None = None) -> Predictor:
        """Build from a run folder: ``checkpoint`` is ``best``, ``last`` or a file path."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            if run_dir.is_file():
                return cls.from_checkpoint(run_dir, infer)
            raise FileNotFoundError(f"{run_dir}: model folder not found")
        path = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.pt"
        config_path = run_dir / "config.json"
        config = RunConfig.load(config_path) if config_path.is_file() else None
        return cls.from_checkpoint(path, infer, config)

    # ------------------------------------------------------------------ tensors
    @torch.no_grad()
    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities of preprocessed images: ``(B, C_in, *spatial) -> (B, K, *spatial)``.

        With ``tta_flips`` the softmax is averaged over flips of every combination of spatial axes.
        """
        image = image.to(self.device)
        dims = image.ndim - 2
        flips: list[tuple[int, ...]] = [()]
        if self.config.infer.tta_flips:
            flips = [tuple(a + 2 for a in range(dims) if mask >> a & 1) for mask in range(2**dims)]
        total = None
        for axes in flips:
            x = torch.flip(image, axes) if axes else image
            probs = torch.softmax(self.inferer(x, self.network).float(), dim=1)
            probs = torch.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        return total / len(flips)

    def predict_labels(self, image: torch.Tensor) -> torch.Tensor:
        """Class-index map of one preprocessed image ``(C_in, *spatial) -> (1, *spatial)`` (uint8/int64)."""
        labels = self.predict_logits(image[None])[0].argmax(dim=0, keepdim=True)
        for step in self._postprocess:
            labels = torch.as_tensor(step(labels))
        return labels

    # ------------------------------------------------------------------ files
    def predict_image(self, path: str | Path) -> np.ndarray:
        """Label map of one image file or DICOM folder, in the source's voxel grid.

        Returns an integer array in the reader's index order, ``(H, W)`` or ``(X, Y, Z)``, whose values
        are the training masks' label values.
        """
        data = self.transforms({IMAGE: str(path)})
        image = data[IMAGE]
        labels = self.predict_labels(image).cpu()
        data[PRED] = MetaTensor(labels.to(torch.float32), meta=dict(image.meta), applied_operations=list(image.applied_operations))
        inverted = self.invert(data)[PRED] if image.applied_operations else data[PRED]
        classes = torch.as_tensor(inverted).round().to(torch.int64)[0].numpy()
        values = np.asarray(self.output_values(path), dtype=np.int64)
        return values[classes]

    def output_values(self, source: str | Path) -> tuple[int, ...]:
        """Value written for each class: the training masks' values; 0/255 for binary raster masks."""
        label_values = tuple(self.config.data.label_values)
        fmt = self.config.infer.output_format or detect_format(source)
        if fmt in RASTER_FORMATS and len(label_values) == 2:
            return (0, 255)
        return label_values

    def predict_file(self, source: str | Path, output_dir: str | Path, *, overwrite: bool = False) -> CaseResult:
        """Predict one input and write its mask into ``output_dir``; errors are returned, not raised."""
        source = Path(source)
        start = time.perf_counter()
        output = None
        try:
            output = Path(output_dir) / mask_filename(source, self.config.infer.output_format)
            if output.exists() and not overwrite:
                return CaseResult(source, output, "skipped")
            mask = self.predict_image(source)
            names = dict(zip(self.output_values(source), self.config.data.label_names or ()))
            write_mask(mask, source, output, output_format=self.config.infer.output_format, label_names=names or None)
            values, counts = np.unique(mask, return_counts=True)
            return CaseResult(source, output, "written", seconds=time.perf_counter() - start, label_counts={int(v): int(c) for v, c in zip(values, counts)})
        except Exception as err:  # one bad case must not stop a batch; the reason is reported
            message = error_message(err)
            if str(source) not in message:
                message = f"{source}: {message}"
            logger.error("failed: %s", message)
            logger.debug("traceback for %s", source, exc_info=True)
            return CaseResult(source, output, "failed", error=message, seconds=time.perf_counter() - start)

    def predict(self, inputs: str | Path | Sequence[str | Path], output_dir: str | Path, *, overwrite: bool = False, progress: bool = True) -> list[CaseResult]:
        """Predict every input (file, folder, glob, CSV/TXT list, or a list of them) into ``output_dir``.

        The batch goes on past failing cases; check ``result.ok`` or :meth:`failures`.
        """
        from tqdm.auto import tqdm

        sources = collect_inputs(inputs)
        output_dir = Path(output_dir)
        for source in sources:
            if output_dir.resolve() == source.parent.resolve() and not overwrite:
                raise ValueError(f"{output_dir}: output folder is the input folder; choose another or pass overwrite")
        output_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for source in tqdm(sources, desc="predict", unit="case", disable=not progress):
            results.append(self.predict_file(source, output_dir, overwrite=overwrite))
        return results

    @staticmethod
    def failures(results: Sequence[CaseResult]) -> list[CaseResult]:
        return [r for r in results if not r.ok]
