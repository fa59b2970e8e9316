"""Segmentation metrics of one case: exact voxel counts, the overlap metrics computed from them, surface distances.

One rule for empty cases, everywhere (per case and pooled over cases): a metric whose denominator is
zero is NaN (the class is absent from both prediction and truth: Dice, IoU, precision, recall are
NaN, so averages are over the cases where the class matters, the nnU-Net convention; recall is NaN
when the truth is empty), except precision, which is 0 when the class is in the truth but nothing was
predicted (a missed structure must not vanish from the mean precision). Accuracy counts true negatives
too and is defined whenever the region scored holds a voxel.

Surface metrics (HD95, average symmetric surface distance, in mm with the truth's spacing) come from
MONAI and are NaN unless both prediction and truth hold the class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from medseg_monai.errors import InputError

__all__ = [
    "COUNTS",
    "OVERLAP_METRICS",
    "SURFACE_METRICS",
    "case_counts",
    "case_metrics",
    "count_row",
    "label_surface",
    "overlap_metrics",
    "surface_metrics",
]

OVERLAP_METRICS = ("dice", "iou", "precision", "recall", "accuracy")
SURFACE_METRICS = ("hd95", "asd")
#: the voxel counts every evaluation row carries, so pooled metrics are sums
COUNTS = ("tp", "fp", "fn", "tn")


def overlap_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Dice, IoU, precision, recall and accuracy from voxel counts, with the module's rule for empty cases."""
    nan = math.nan
    both_empty = tp + fp + fn == 0
    total = tp + fp + fn + tn
    return {
        "dice": nan if both_empty else 2 * tp / (2 * tp + fp + fn),
        "iou": nan if both_empty else tp / (tp + fp + fn),
        "precision": tp / (tp + fp) if tp + fp else (nan if both_empty else 0.0),
        "recall": tp / (tp + fn) if tp + fn else nan,
        "accuracy": (tp + tn) / total if total else nan,
    }


def count_row(tp: int, fp: int, fn: int, tn: int, surface: Mapping[str, float] | None = None) -> dict[str, float]:
    """The row of one label from its counts, in the column order of ``metrics_per_case.csv``: the overlap
    metrics, ``truth_voxels``, ``pred_voxels``, the surface metrics when given, then the counts."""
    row: dict[str, float] = {
        **overlap_metrics(tp, fp, fn, tn),
        "truth_voxels": float(tp + fn),
        "pred_voxels": float(tp + fp),
    }
    if surface is not None:
        row.update(surface)
    return {**row, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def case_counts(
    pred: np.ndarray, truth: np.ndarray, values: Iterable[int], roi: np.ndarray | None = None
) -> dict[int, tuple[int, int, int, int]]:
    """``(tp, fp, fn, tn)`` of each label value between two label maps of equal shape, inside ``roi`` when given."""
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    inside = None if roi is None else np.asarray(roi, dtype=bool)
    if inside is not None and inside.shape != truth.shape:
        raise InputError(f"roi shape {inside.shape} differs from truth shape {truth.shape}")
    total = truth.size if inside is None else int(inside.sum())
    counts = {}
    for value in values:
        p, t = _label_masks(pred, truth, value, inside)
        tp = int(np.count_nonzero(p & t))
        fp, fn = int(np.count_nonzero(p)) - tp, int(np.count_nonzero(t)) - tp
        counts[int(value)] = (tp, fp, fn, total - tp - fp - fn)
    return counts


def label_surface(
    pred: np.ndarray, truth: np.ndarray, label: int, roi: np.ndarray | None, spacing: Sequence[float] | None
) -> dict[str, float]:
    """:func:`surface_metrics` of one label of two label maps, inside ``roi`` when given."""
    return surface_metrics(*_label_masks(pred, truth, label, roi), spacing)


def _label_masks(
    pred: np.ndarray, truth: np.ndarray, label: int, roi: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Where ``label`` is predicted and where it is true, inside ``roi`` when given."""
    p, t = pred == label, truth == label
    if roi is not None:
        p &= roi
        t &= roi
    return p, t


def surface_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None) -> dict[str, float]:
    """HD95 and average symmetric surface distance between two boolean masks (NaN unless both are non-empty)."""
    if not pred.any() or not truth.any():
        return {"hd95": math.nan, "asd": math.nan}
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(np.ascontiguousarray(pred))[None, None]
    t = torch.from_numpy(np.ascontiguousarray(truth))[None, None]
    sp = list(spacing) if spacing is not None else None
    with warnings.catch_warnings():  # MONAI 1.6 passes its own deprecated get_mask_edges argument internally
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd95 = compute_hausdorff_distance(p, t, percentile=95, spacing=sp)
        asd = compute_average_surface_distance(p, t, symmetric=True, spacing=sp)
    return {"hd95": float(hd95.item()), "asd": float(asd.item())}


def case_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[int],
    *,
    spacing: Sequence[float] | None = None,
    surface: bool = False,
    roi: np.ndarray | None = None,
) -> dict[int, dict[str, float]]:
    """Metrics and counts of each label value between two label maps of equal shape.

    Args:
        pred, truth: integer label maps ``(H, W)`` or ``(X, Y, Z)``.
        labels: label values to score (background excluded by the caller).
        spacing: voxel size for surface distances (mm); ``None`` means 1 per axis.
        surface: also compute HD95 and average symmetric surface distance.
        roi: optional boolean mask; only voxels inside it count (e.g. a retina's field of view).

    Returns:
        Per label: the overlap metrics, ``truth_voxels``, ``pred_voxels``, the surface metrics when asked,
        and the counts ``tp``, ``fp``, ``fn``, ``tn``.
    """
    inside = None if roi is None else np.asarray(roi, dtype=bool)
    return {
        label: count_row(*counts, label_surface(pred, truth, label, inside, spacing) if surface else None)
        for label, counts in case_counts(pred, truth, labels, inside).items()
    }
