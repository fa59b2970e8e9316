"""Scoring a folder of predicted masks against the ground truth, one case at a time.

Predictions are matched to truth masks by case name; each pair is read, scored and let go before the
next is read, so memory stays that of one case whatever the number of cases (masks are kept in their
file's integer type). Every row (case, label) carries its metrics and its voxel counts ``tp``, ``fp``,
``fn``, ``tn``; the rule for empty cases is that of :mod:`medseg_monai.evaluation.metrics`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg_monai.errors import InputError, error_message
from medseg_monai.evaluation.metrics import OVERLAP_METRICS, SURFACE_METRICS, case_counts, count_row, label_surface
from medseg_monai.evaluation.pooling import mean_over_rows, metric_summaries
from medseg_monai.io import IMAGE_SUFFIXES, as_label_map, load_image, read_geometry, spatial_dims_of, split_suffix
from medseg_monai.utils import atomic_write_text

__all__ = ["EvaluationResult", "evaluate_folders", "match_predictions"]

logger = logging.getLogger(__name__)

_MASK_SUFFIXES = ("_mask", "_segmentation", "_seg", "_label")


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Rows per case and class, their summary, and where they were written."""

    rows: list[dict]
    summary: dict
    per_case_csv: Path | None
    summary_json: Path | None

    def mean(self, metric: str = "dice", label: int | None = None) -> float:
        """Mean of ``metric`` over cases (and over classes when ``label`` is None), ignoring NaN."""
        values = [r[metric] for r in self.rows if (label is None or r["label"] == label) and not math.isnan(r[metric])]
        return float(np.mean(values)) if values else math.nan


def _case_key(path: Path) -> str:
    stem = split_suffix(path)[0]
    for suffix in _MASK_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _index_folder(folder: Path) -> dict[str, Path]:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)
    )
    index: dict[str, Path] = {}
    for path in files:
        key = _case_key(path)
        if key in index:
            raise InputError(f"{folder}: two files for case {key!r}: {index[key].name}, {path.name}")
        index[key] = path
    return index


def _truth_index(truth: Path) -> dict[str, Path]:
    """Masks by case name, from a dataset root in any supported layout or a plain folder of masks."""
    from medseg_monai.data.datalist import discover_pairs

    try:
        return {item["name"]: Path(item["label"]) for item in discover_pairs(truth)}
    except ValueError:
        return _index_folder(truth)


def match_predictions(pred_dir: str | Path, truth: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair predicted masks with truth masks by case name.

    Returns:
        ``[(name, prediction, truth), ...]`` and the names of truth cases with no prediction.
    """
    pred_dir, truth = Path(pred_dir), Path(truth)
    for folder in (pred_dir, truth):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    preds = _index_folder(pred_dir)
    truths = _truth_index(truth)
    matched = [(name, preds[name], truths[name]) for name in sorted(preds) if name in truths]
    if not matched:
        raise InputError(f"{pred_dir}: no prediction matches a mask in {truth} by case name")
    extra = sorted(set(preds) - set(truths))
    if extra:
        logger.warning("%d predictions have no truth mask: %s", len(extra), ", ".join(extra[:10]))
    return matched, sorted(set(truths) - set(preds))


@dataclasses.dataclass
class _Scored:
    """What is kept of one case once its masks are let go: counts for every value in it, surface distances."""

    name: str
    total: int
    counts: dict[int, tuple[int, int, int, int]]
    surface: dict[int, dict[str, float]]

    def row(self, label: int, label_name: str, surface: bool) -> dict:
        counts = self.counts.get(label, (0, 0, 0, self.total))
        distances = self.surface.get(label, {"hd95": math.nan, "asd": math.nan}) if surface else None
        return {"case": self.name, "label": label, "label_name": label_name, **count_row(*counts, distances)}


def _score_case(
    name: str, pred_path: Path, truth_path: Path, roi_path: Path | None, labels: Sequence[int] | None, surface: bool
) -> tuple[_Scored, set[int]]:
    """Read one case, count every label value in it, and return the counts with the truth's label values."""
    spatial_dims = spatial_dims_of(truth_path)
    truth = as_label_map(load_image(truth_path, role="mask"), spatial_dims)
    pred = as_label_map(load_image(pred_path, role="mask"), spatial_dims)
    roi = as_label_map(load_image(roi_path, role="mask"), spatial_dims) > 0 if roi_path is not None else None
    spacing = read_geometry(truth_path).spacing if spatial_dims == 3 else None
    truth_values = {int(v) for v in np.unique(truth)} - {0}
    scope = set(labels) if labels is not None else truth_values | ({int(v) for v in np.unique(pred)} - {0})
    counts = case_counts(pred, truth, sorted(scope), roi)
    total = truth.size if roi is None else int(roi.sum())
    distances = {}
    if surface:
        for label in sorted(scope & truth_values if labels is None else scope):
            distances[label] = label_surface(pred, truth, label, roi, spacing)
    return _Scored(name, total, counts, distances), truth_values


def evaluate_folders(
    pred_dir: str | Path,
    truth: str | Path,
    *,
    output_dir: str | Path | None = None,
    labels: Sequence[int] | None = None,
    label_names: dict[int, str] | None = None,
    surface: bool = False,
    roi_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score every prediction in ``pred_dir`` against the matching mask under ``truth``, one case at a time.

    Args:
        pred_dir: folder of predicted masks named like their source images.
        truth: folder of truth masks, or a dataset root in any supported layout.
        output_dir: where ``metrics_per_case.csv`` and ``metrics_summary.json`` go (``None``: not written).
        labels: label values to score; default: every nonzero value found in the truth masks.
        label_names: optional names per label value for the outputs.
        surface: add HD95 and average surface distance (slower).
        roi_dir: folder of region-of-interest masks matched by case name (metrics inside them only).
    """
    matched, missing = match_predictions(pred_dir, truth)
    rois = _index_folder(Path(roi_dir)) if roi_dir else {}
    scored: list[_Scored] = []
    found: set[int] = set()
    errors: dict[str, str] = {}
    for name, pred_path, truth_path in matched:
        try:
            case, truth_values = _score_case(name, pred_path, truth_path, rois.get(name), labels, surface)
        except (OSError, ValueError) as err:
            errors[name] = _case_error(err, pred_path, truth_path)
            logger.error("%s: %s", name, errors[name])
            continue
        scored.append(case)
        found |= truth_values
    labels = sorted(found) if labels is None else [int(v) for v in labels]
    names = label_names or {}
    rows = [case.row(label, names.get(label, str(label)), surface) for case in scored for label in labels]
    metrics = list(OVERLAP_METRICS + SURFACE_METRICS) if surface else list(OVERLAP_METRICS)
    summary = {
        "cases": len(scored) if labels else 0,
        "labels": labels,
        "mean": mean_over_rows(rows, metrics) if rows else {},
        "per_label": metric_summaries(rows, labels, names, metrics if rows else []),
        "missing_predictions": missing,
        "errors": errors,
    }
    per_case_csv = summary_json = None
    if output_dir is not None:
        output_dir = Path(output_dir)
        per_case_csv = atomic_write_text(output_dir / "metrics_per_case.csv", _rows_to_csv(rows))
        summary_json = atomic_write_text(output_dir / "metrics_summary.json", json.dumps(summary, indent=2) + "\n")
    return EvaluationResult(rows, summary, per_case_csv, summary_json)


def _case_error(err: BaseException, pred_path: Path, truth_path: Path) -> str:
    """One line for a case that could not be scored, naming the prediction (and its truth) unless it names a file."""
    message = error_message(err)
    if str(pred_path) in message or str(truth_path) in message:
        return message
    return f"{pred_path} (truth {truth_path}): {message}"


def _rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()
