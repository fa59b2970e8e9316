"""What a case writes besides its mask: probability and entropy maps, and per-label statistics.

``run_batch`` asks for them through :class:`CaseOutputs` (from :class:`~medseg_monai.config.BatchOptions`);
the maps come from :meth:`~medseg_monai.inference.predictor.Predictor.predict_maps` with the mask, the
statistics from the mask and the source image read again in its own units. The batch's statistics
become ``predict_statistics.csv`` once all parts are done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.config import BatchOptions, ProbabilityDtype
from medseg_monai.errors import ConfigError
from medseg_monai.inference import Predictor
from medseg_monai.inference.maps import MapRequest, PredictionMaps
from medseg_monai.io import is_complete, label_sidecar_path, load_image, read_geometry, split_suffix
from medseg_monai.io.label_statistics import label_statistics, write_statistics_csv
from medseg_monai.io.maps import map_path, read_map_info, write_probability_map, write_scalar_map

__all__ = [
    "STATISTICS_NAME",
    "CaseOutputs",
    "case_complete",
    "case_statistics",
    "discard_case",
    "map_entries",
    "maps_complete",
    "write_batch_statistics",
    "write_maps",
]

STATISTICS_NAME = "predict_statistics.csv"


@dataclasses.dataclass(frozen=True)
class CaseOutputs:
    """Outputs of a case besides its mask (``BatchOptions``: ``statistics``, ``save_probabilities``,
    ``save_uncertainty``)."""

    statistics: bool = False
    probabilities: ProbabilityDtype | None = None
    entropy: bool = False

    @classmethod
    def from_options(cls, options: BatchOptions) -> CaseOutputs:
        return cls(
            options.statistics,
            options.probabilities_dtype if options.save_probabilities else None,
            options.save_uncertainty,
        )

    @property
    def maps(self) -> MapRequest:
        return MapRequest(self.probabilities, self.entropy)

    def check(self, predictor: Predictor) -> None:
        """Refuse, before any work, maps the predictor's settings cannot give."""
        plan = predictor.plan
        if self.entropy and not plan.tta:
            raise ConfigError(
                "save_uncertainty is the entropy over test-time flips; add --tta-flips (infer.tta_flips=true)"
            )
        if self.entropy and predictor.tta_passes < 2:
            raise ConfigError(
                "save_uncertainty needs flips to average, but the model mirrored no axis in training "
                f"(data.flip_axes={list(predictor.config.data.mirror_axes)})"
            )
        self.maps.check_stitching(plan.stitching, predictor.stitching.writes_maps)

    def map_files(self, predictor: Predictor, source: Path, output_dir: Path) -> dict[str, Path]:
        """The map files of ``source`` asked for, by kind, named after its mask (``<mask stem>_<kind>``)."""
        kinds = (["probabilities"] if self.probabilities else []) + (["entropy"] if self.entropy else [])
        stem = split_suffix(predictor.mask_path(source, output_dir).name)[0] if kinds else None
        return {kind: map_path(source, output_dir, kind, stem) for kind in kinds}


def case_complete(predictor: Predictor, source: Path, output: Path, outputs: CaseOutputs) -> bool:
    """The mask (and every map asked for) is already there and readable: the case can be skipped."""
    return is_complete(output, source, sidecar=bool(predictor.label_names(source))) and maps_complete(
        predictor, outputs, source, output.parent
    )


def discard_case(predictor: Predictor, source: Path, output: Path, outputs: CaseOutputs) -> None:
    """Remove what a failed attempt at a case wrote: its mask, label file and maps."""
    for path in (output, label_sidecar_path(output), *outputs.map_files(predictor, source, output.parent).values()):
        path.unlink(missing_ok=True)


def maps_complete(predictor: Predictor, outputs: CaseOutputs, source: Path, output_dir: Path) -> bool:
    """True when every map asked for exists beside the mask with the source's spatial shape."""
    try:
        shape = read_geometry(source).shape
        want = {
            "probabilities": (predictor.config.data.num_classes, np.dtype(outputs.probabilities or "uint8")),
            "entropy": (1, np.dtype(np.float32)),
        }
        for kind, path in outputs.map_files(predictor, source, output_dir).items():
            if not path.is_file() or read_map_info(path) != (shape, *want[kind]):
                return False
    except (OSError, ValueError):
        return False
    return True


def _entropy_entry(path: Path, entropy: np.ndarray, foreground: np.ndarray) -> dict[str, Any]:
    mean = float(entropy[foreground].mean()) if foreground.any() else None
    return {"path": str(path.resolve()), "mean_foreground": mean}


def _probabilities_entry(predictor: Predictor, source: Path, path: Path, dtype: np.dtype) -> dict[str, Any]:
    return {
        "path": str(path.resolve()),
        "classes": list(predictor.output_values(source)),
        "dtype": str(dtype),
        "scale": 255 if dtype == np.uint8 else 1,
    }


def map_entries(
    predictor: Predictor, source: Path, output_dir: Path, outputs: CaseOutputs, mask: np.ndarray
) -> dict[str, Any]:
    """The manifest entries of maps already written for ``source`` (a kept case), read back from the files."""
    entries: dict[str, Any] = {}
    for kind, path in outputs.map_files(predictor, source, output_dir).items():
        if kind == "probabilities":
            entries[kind] = _probabilities_entry(predictor, source, path, read_map_info(path)[2])
        else:
            entropy = np.asarray(load_image(path), dtype=np.float32)
            if entropy.shape != mask.shape:
                raise ValueError(f"{path}: shape {entropy.shape} differs from the mask's {mask.shape}")
            entries[kind] = _entropy_entry(path, entropy, mask != predictor.output_values(source)[0])
    return entries


def write_maps(
    predictor: Predictor, maps: PredictionMaps, source: Path, output_dir: Path, outputs: CaseOutputs
) -> dict[str, Any]:
    """Write the maps of one case; its manifest entries: the files, the classes' order and scale, the mean
    entropy over the foreground (``None`` without foreground)."""
    entries: dict[str, Any] = {}
    files = outputs.map_files(predictor, source, output_dir)
    if maps.probabilities is not None:
        write_probability_map(maps.probabilities, source, files["probabilities"])
        entries["probabilities"] = _probabilities_entry(
            predictor, source, files["probabilities"], maps.probabilities.dtype
        )
    if maps.entropy is not None:
        write_scalar_map(maps.entropy, source, files["entropy"])
        entries["entropy"] = _entropy_entry(
            files["entropy"], maps.entropy, maps.mask != predictor.output_values(source)[0]
        )
    return entries


def case_statistics(
    predictor: Predictor, source: Path, mask: np.ndarray, sizes: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per-label statistics of ``mask`` over ``source`` read again in its own units (HU for CT); of a case with several
    channel files, over its first channel. ``sizes``: the manifest's label entries of this mask, when computed."""
    image = load_image(source)
    values = predictor.output_values(source)
    geometry = read_geometry(source)
    array = np.asarray(image)
    if array.ndim == mask.ndim + 1 and array.shape[:-1] != mask.shape and array.shape[1:] == mask.shape:
        array = np.moveaxis(array, 0, -1)  # channel-first multi-channel source: channels last
    if (
        mask.ndim == 3 and array.ndim == 4
    ):  # a volume's channels are modalities, not colours: the first, as for separate files
        array = array[..., 0]
    return label_statistics(
        mask,
        array,
        np.asarray(geometry.affine_ras),
        geometry.spacing,
        predictor.label_names(source),
        background=values[0],
        sizes=sizes,
    )


def write_batch_statistics(records: Sequence[Mapping[str, Any]], output_dir: Path) -> Path | None:
    """``predict_statistics.csv`` from the manifest's records (cases in input order); ``None`` when none has any."""
    rows = [
        dict(row, case=record["input"])
        for record in sorted(records, key=lambda r: r["index"])
        for row in (record.get("statistics") or [])
    ]
    if not rows and not any("statistics" in record for record in records):
        return None
    return write_statistics_csv(rows, output_dir / STATISTICS_NAME)
