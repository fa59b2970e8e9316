"""Measuring masks against the ground truth.

- :mod:`~medseg_monai.evaluation.metrics`: one case: voxel counts, overlap metrics from them (one rule
  for empty cases), surface distances;
- :mod:`~medseg_monai.evaluation.pooling`: many cases: per-label statistics, pooled counts, per-group
  pooling, best and worst cases;
- :mod:`~medseg_monai.evaluation.folders`: a folder of predictions against a folder (or dataset) of
  truth masks, one case at a time, to ``metrics_per_case.csv`` and ``metrics_summary.json``.
"""

from medseg_monai.evaluation.folders import EvaluationResult, evaluate_folders, match_predictions
from medseg_monai.evaluation.metrics import (
    COUNTS,
    OVERLAP_METRICS,
    SURFACE_METRICS,
    case_counts,
    case_metrics,
    count_row,
    overlap_metrics,
)
from medseg_monai.evaluation.pooling import (
    best_and_worst,
    case_scores,
    metric_summaries,
    pooled_by_group,
    pooled_metrics,
)

__all__ = [
    "COUNTS",
    "OVERLAP_METRICS",
    "SURFACE_METRICS",
    "EvaluationResult",
    "best_and_worst",
    "case_counts",
    "case_metrics",
    "case_scores",
    "count_row",
    "evaluate_folders",
    "metric_summaries",
    "match_predictions",
    "overlap_metrics",
    "pooled_by_group",
    "pooled_metrics",
]
