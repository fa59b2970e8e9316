"""Metrics over many cases from the evaluation rows: per-label statistics, pooled counts, per-group pooling,
case ranking.

Pooled metrics sum each row's ``tp``/``fp``/``fn``/``tn`` (every voxel weighs the same: the usual DRIVE
pixel-level F1, or a volume Dice for a set of slices) and apply the same rule for empty cases as a
single case (:func:`medseg_monai.evaluation.metrics.overlap_metrics`); the means of
:func:`metric_summaries` weigh every case the same.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from medseg_monai.evaluation.metrics import COUNTS, overlap_metrics

__all__ = ["best_and_worst", "case_scores", "metric_summaries", "mean_over_rows", "pooled_by_group", "pooled_metrics"]


def _sum_counts(rows: Sequence[Mapping], key: Callable[[Mapping], object]) -> dict[object, list[int]]:
    sums: dict[object, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        group = key(row)
        if group is None:
            continue
        for i, name in enumerate(COUNTS):
            sums[group][i] += int(row[name])
    return sums


def pooled_metrics(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """Overlap metrics per label name from the voxel counts summed over all cases."""
    return {
        str(name): overlap_metrics(*counts) for name, counts in _sum_counts(rows, lambda r: r["label_name"]).items()
    }


def pooled_by_group(rows: Sequence[Mapping], group_of: Callable[[str], str | None]) -> dict[str, dict[str, float]]:
    """Pooled Dice per label and group (e.g. patient), with the mean over groups under ``"mean"``.

    Cases whose ``group_of(name)`` is ``None`` are left out.
    """

    def key(row: Mapping) -> tuple[str, str] | None:
        group = group_of(str(row["case"]))
        return None if group is None else (str(row["label_name"]), group)

    result: dict[str, dict[str, float]] = defaultdict(dict)
    for (label, group), counts in sorted(_sum_counts(rows, key).items()):
        result[label][group] = overlap_metrics(*counts)["dice"]
    for groups in result.values():
        values = [v for v in groups.values() if not math.isnan(v)]
        groups["mean"] = float(np.mean(values)) if values else math.nan
    return dict(result)


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"mean": None, "std": None, "median": None, "n": 0}
    return {
        "mean": float(np.mean(clean)),
        "std": float(np.std(clean)),
        "median": float(np.median(clean)),
        "n": len(clean),
    }


def metric_summaries(
    rows: Sequence[Mapping], labels: Sequence[int], names: Mapping[int, str], metrics: Sequence[str]
) -> dict:
    """Per label name, per metric: mean, std, median and the number of cases where it is defined (NaN left out)."""
    per_label = {}
    for label in labels:
        label_rows = [r for r in rows if r["label"] == label]
        per_label[names.get(label, str(label))] = {m: _stats([r[m] for r in label_rows]) for m in metrics}
    return per_label


def mean_over_rows(rows: Sequence[Mapping], metrics: Sequence[str]) -> dict[str, float | None]:
    """Mean of each metric over every case and label (NaN left out)."""
    return {m: _stats([r[m] for r in rows])["mean"] for m in metrics}


def case_scores(rows: Sequence[Mapping], labels: Sequence[int], metric: str = "dice") -> dict[str, float]:
    """Per case, the mean of ``metric`` over ``labels`` (NaN where every label is NaN)."""
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["label"] in labels:
            values[str(row["case"])].append(float(row[metric]))
    return {case: float(np.nanmean(v)) if any(not math.isnan(x) for x in v) else math.nan for case, v in values.items()}


def best_and_worst(
    scores: Mapping[str, float], count: int = 2
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``count`` highest and lowest scoring cases (NaN ignored; no case in both lists)."""
    ranked = sorted(((c, s) for c, s in scores.items() if not math.isnan(s)), key=lambda cs: (-cs[1], cs[0]))
    best = ranked[: min(count, (len(ranked) + 1) // 2)]
    worst = ranked[len(best) :][-count:][::-1]
    return best, worst
