"""What a recipe adds on top of :func:`medseg_monai.evaluation.evaluate_folders`: pooled metrics,
per-patient pooling, case ranking and the best/worst overlay figure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["best_and_worst", "case_scores", "pooled_metrics", "pooled_by_group", "save_best_worst_figure"]


def _counts(row: Mapping) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one evaluation row."""
    truth, pred = int(row["truth_voxels"]), int(row["pred_voxels"])
    dice = row["dice"]
    tp = 0 if dice is None or math.isnan(dice) else int(round(dice * (truth + pred) / 2))
    return tp, pred - tp, truth - tp


def _overlap(tp: int, fp: int, fn: int) -> dict[str, float]:
    nan = math.nan
    return {
        "dice": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
        "precision": tp / (tp + fp) if tp + fp else nan,
        "recall": tp / (tp + fn) if tp + fn else nan,
    }


def pooled_metrics(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """Dice/IoU/precision/recall per label from voxel counts summed over all cases.

    Pooling weighs every voxel equally (the usual DRIVE pixel-level F1, or a volume Dice for a set of
    slices); the per-case means of the evaluation weigh every case equally.
    """
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        for i, value in enumerate(_counts(row)):
            sums[str(row["label_name"])][i] += value
    return {name: _overlap(*counts) for name, counts in sums.items()}


def pooled_by_group(rows: Sequence[Mapping], group_of: Callable[[str], str | None]) -> dict[str, dict[str, float]]:
    """Pooled Dice per label and group (e.g. patient), with the mean over groups under ``"mean"``."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        group = group_of(str(row["case"]))
        if group is None:
            continue
        for i, value in enumerate(_counts(row)):
            sums[(str(row["label_name"]), group)][i] += value
    result: dict[str, dict[str, float]] = defaultdict(dict)
    for (label, group), counts in sorted(sums.items()):
        result[label][group] = _overlap(*counts)["dice"]
    for label, groups in result.items():
        values = [v for v in groups.values() if not math.isnan(v)]
        groups["mean"] = float(np.mean(values)) if values else math.nan
    return dict(result)


def case_scores(rows: Sequence[Mapping], labels: Sequence[int], metric: str = "dice") -> dict[str, float]:
    """Per case, the mean of ``metric`` over ``labels`` (NaN where every label is NaN)."""
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["label"] in labels:
            values[str(row["case"])].append(float(row[metric]))
    return {case: float(np.nanmean(v)) if any(not math.isnan(x) for x in v) else math.nan for case, v in values.items()}


def best_and_worst(scores: Mapping[str, float], count: int = 2) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``count`` highest and lowest scoring cases (NaN ignored; no case in both lists)."""
    ranked = sorted(((c, s) for c, s in scores.items() if not math.isnan(s)), key=lambda cs: (-cs[1], cs[0]))
    best = ranked[: min(count, (len(ranked) + 1) // 2)]
    worst = ranked[len(best):][-count:][::-1]
    return best, worst


#: one colour per scored label value, the same in every panel
_COLOURS = np.array([[0.1, 0.8, 0.1], [0.95, 0.15, 0.15], [0.2, 0.4, 1.0], [1.0, 0.8, 0.1], [0.8, 0.2, 0.9], [0.1, 0.9, 0.9]])


def _blend(rgb: np.ndarray, labels: np.ndarray, label_values: Sequence[int], alpha: float = 0.45) -> np.ndarray:
    out = rgb.copy()
    for index, value in enumerate(label_values):
        where = labels == value
        out[where] = (1 - alpha) * out[where] + alpha * _COLOURS[index % len(_COLOURS)]
    return out


def _middle_slice(truth: np.ndarray, pred: np.ndarray, label_values: Sequence[int]) -> int | None:
    """Axial index through the middle of the labelled extent (truth, else prediction)."""
    for reference in (truth, pred):
        mask = np.isin(reference, list(label_values))
        if mask.any():
            zs = np.nonzero(mask.any(axis=(0, 1)))[0]
            return int(zs[len(zs) // 2])
    return None


def save_best_worst_figure(
    best: Sequence[tuple[str, float]],
    worst: Sequence[tuple[str, float]],
    cases: Mapping[str, Mapping[str, str]],
    predictions: Mapping[str, Path],
    path: Path,
    spatial_dims: int,
    title: str,
    label_values: Sequence[int],
    metric: str = "Dice",
) -> Path:
    """Image | truth | prediction rows of the best and worst validation cases (middle slice in 3D).

    Each value of ``label_values`` keeps one colour in every panel (green, red, blue, ...).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg_monai.io import load_image
    from medseg_monai.reporting.figures import display_slice, overlay
    from medseg_monai.utils import atomic_path

    rows = [(tag, name, score) for tag, ranked in (("best", best), ("worst", worst)) for name, score in ranked
            if name in cases and name in predictions and Path(predictions[name]).exists()]
    fig, axes = plt.subplots(max(len(rows), 1), 3, figsize=(9, 3 * max(len(rows), 1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (tag, name, score) in enumerate(rows):
        image = np.asarray(load_image(cases[name]["image"]), dtype=np.float32)
        truth = np.rint(np.asarray(load_image(cases[name]["label"]))).astype(np.int64)
        pred = np.rint(np.asarray(load_image(predictions[name]))).astype(np.int64)
        if truth.ndim > spatial_dims:
            truth = truth[..., 0]
        index = _middle_slice(truth, pred, label_values) if spatial_dims == 3 else None
        background = overlay(display_slice(image, spatial_dims, index), None)
        panels = [
            (f"{tag}: {name} ({metric} {score:.3f})", background),
            ("truth", _blend(background, display_slice(truth, spatial_dims, index), label_values)),
            ("prediction", _blend(background, display_slice(pred, spatial_dims, index), label_values)),
        ]
        for col, (label, picture) in enumerate(panels):
            axes[row, col].imshow(np.clip(picture, 0, 1))
            axes[row, col].set_title(label, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
