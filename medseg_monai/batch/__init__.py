"""Many inputs: :func:`run_batch` runs a Predictor over a batch of cases (skip-done, sharding across
processes, claims, the manifest, maps and statistics beside the masks, reading ahead, the QA report)."""

from medseg_monai.batch.case_outputs import STATISTICS_NAME
from medseg_monai.batch.cases import STAGES, CaseResult, failures, predict_case
from medseg_monai.batch.manifest import MANIFEST_NAME
from medseg_monai.batch.runner import REPORT_NAME, run_batch
from medseg_monai.batch.sharding import Shard, resolve_shard, wait_for_parts

__all__ = [
    "MANIFEST_NAME",
    "REPORT_NAME",
    "STAGES",
    "STATISTICS_NAME",
    "CaseResult",
    "Shard",
    "failures",
    "predict_case",
    "resolve_shard",
    "run_batch",
    "wait_for_parts",
]
