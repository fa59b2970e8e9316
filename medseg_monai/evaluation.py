"""Per-case, per-class segmentation metrics between a folder of predictions and the ground truth.

Overlap metrics (Dice, IoU, precision, recall, accuracy) are exact voxel counts; surface metrics
(HD95, average symmetric surface distance, in mm using the truth's spacing) come from MONAI.
A case where a class is absent from both prediction and truth gets NaN for that class, so averages
are over the cases where the class matters (the nnU-Net convention).
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

from medseg_monai.io import IMAGE_SUFFIXES, RASTER_FORMATS, detect_format, load_image, read_geometry, split_suffix
from medseg_monai.utils import atomic_write_text

__all__ = ["EvaluationResult", "case_metrics", "evaluate_folders", "match_predictions"]

logger = logging.getLogger(__name__)

OVERLAP_METRICS = ("dice", "iou", "precision", "recall", "accuracy")
SURFACE_METRICS = ("hd95", "asd")
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
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES))
    index: dict[str, Path] = {}
    for path in files:
        key = _case_key(path)
        if key in index:
            raise ValueError(f"{folder}: two files for case {key!r}: {index[key].name}, {path.name}")
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
        raise ValueError(f"{pred_dir}: no prediction matches a mask in {truth} by case name")
    extra = sorted(set(preds) - set(truths))
    if extra:
        logger.warning("%d predictions have no truth mask: %s", len(extra), ", ".join(extra[:10]))
    return matched, sorted(set(truths) - set(preds))


def _as_labels(array: np.ndarray, spatial_dims: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim > spatial_dims:
        array = array[..., 0]
    return np.rint(array).astype(np.int64)


def case_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[int],
    *,
    spacing: Sequence[float] | None = None,
    surface: bool = False,
    roi: np.ndarray | None = None,
) -> dict[int, dict[str, float]]:
    """Metrics of each label value between two label maps of equal shape.

    Args:
        pred, truth: integer label maps ``(H, W)`` or ``(X, Y, Z)``.
        labels: label values to score (background excluded by the caller).
        spacing: voxel size for surface distances (mm); ``None`` means 1 per axis.
        surface: also compute HD95 and average symmetric surface distance.
        roi: optional boolean mask; only voxels inside it count (e.g. a retina's field of view).
    """
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    inside = np.ones(truth.shape, dtype=bool) if roi is None else np.asarray(roi, dtype=bool)
    if inside.shape != truth.shape:
        raise ValueError(f"roi shape {inside.shape} differs from truth shape {truth.shape}")
    total = int(inside.sum())
    results: dict[int, dict[str, float]] = {}
    for label in labels:
        p = (pred == label) & inside
        t = (truth == label) & inside
        tp = int(np.count_nonzero(p & t))
        fp = int(np.count_nonzero(p)) - tp
        fn = int(np.count_nonzero(t)) - tp
        tn = total - tp - fp - fn
        both_empty = tp + fp + fn == 0
        row = {
            "dice": math.nan if both_empty else 2 * tp / (2 * tp + fp + fn),
            "iou": math.nan if both_empty else tp / (tp + fp + fn),
            "precision": tp / (tp + fp) if tp + fp else (math.nan if both_empty else 0.0),
            "recall": tp / (tp + fn) if tp + fn else math.nan,
            "accuracy": (tp + tn) / total if total else math.nan,
            "truth_voxels": float(tp + fn),
            "pred_voxels": float(tp + fp),
        }
        if surface:
            row.update(_surface_metrics(p, t, spacing))
        results[int(label)] = row
    return results


def _surface_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None) -> dict[str, float]:
    if not pred.any() or not truth.any():
        return {"hd95": math.nan, "asd": math.nan}
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(pred)[None, None]
    t = torch.from_numpy(truth)[None, None]
    sp = list(spacing) if spacing is not None else None
    hd95 = compute_hausdorff_distance(p, t, percentile=95, spacing=sp)
    asd = compute_average_surface_distance(p, t, symmetric=True, spacing=sp)
    return {"hd95": float(hd95.item()), "asd": float(asd.item())}


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
    """Score every prediction in ``pred_dir`` against the matching mask under ``truth``.

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
    loaded = []
    errors: dict[str, str] = {}
    for name, pred_path, truth_path in matched:
        try:
            truth_img = load_image(truth_path)
            spatial_dims = 2 if detect_format(truth_path) in RASTER_FORMATS else 3
            truth_arr = _as_labels(truth_img, spatial_dims)
            pred_arr = _as_labels(load_image(pred_path), spatial_dims)
            roi = _as_labels(load_image(rois[name]), spatial_dims) > 0 if name in rois else None
            spacing = read_geometry(truth_path).spacing if spatial_dims == 3 else None
            loaded.append((name, pred_arr, truth_arr, roi, spacing))
        except (OSError, ValueError) as err:
            errors[name] = str(err).splitlines()[0]
            logger.error("%s: %s", name, errors[name])
    if labels is None:
        found: set[int] = set()
        for _, _, truth_arr, _, _ in loaded:
            found.update(int(v) for v in np.unique(truth_arr))
        labels = sorted(found - {0})
    names = label_names or {}
    rows = []
    for name, pred_arr, truth_arr, roi, spacing in loaded:
        try:
            per_label = case_metrics(pred_arr, truth_arr, labels, spacing=spacing, surface=surface, roi=roi)
        except ValueError as err:
            errors[name] = str(err)
            logger.error("%s: %s", name, err)
            continue
        for label, metrics in per_label.items():
            rows.append({"case": name, "label": label, "label_name": names.get(label, str(label)), **metrics})
    summary = _summarise(rows, labels, names, missing, errors)
    per_case_csv = summary_json = None
    if output_dir is not None:
        output_dir = Path(output_dir)
        per_case_csv = atomic_write_text(output_dir / "metrics_per_case.csv", _rows_to_csv(rows))
        summary_json = atomic_write_text(output_dir / "metrics_summary.json", json.dumps(summary, indent=2) + "\n")
    return EvaluationResult(rows, summary, per_case_csv, summary_json)


def _nan_stats(values: list[float]) -> dict[str, float | int]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"mean": None, "std": None, "median": None, "n": 0}
    return {"mean": float(np.mean(clean)), "std": float(np.std(clean)), "median": float(np.median(clean)), "n": len(clean)}


def _summarise(rows: list[dict], labels: Sequence[int], names: dict[int, str], missing: list[str], errors: dict[str, str]) -> dict:
    metric_names = [m for m in OVERLAP_METRICS + SURFACE_METRICS if rows and m in rows[0]]
    per_label = {}
    for label in labels:
        label_rows = [r for r in rows if r["label"] == label]
        per_label[names.get(label, str(label))] = {m: _nan_stats([r[m] for r in label_rows]) for m in metric_names}
    means = {m: _nan_stats([r[m] for r in rows])["mean"] for m in metric_names}
    return {
        "cases": len({r["case"] for r in rows}),
        "labels": [int(v) for v in labels],
        "mean": means,
        "per_label": per_label,
        "missing_predictions": missing,
        "errors": errors,
    }


def _rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()
