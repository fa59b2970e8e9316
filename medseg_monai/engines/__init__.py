"""Training and inference engines built on MONAI's ignite workflows.

- :mod:`~medseg_monai.engines.train`: ``SupervisedTrainer`` + ``SupervisedEvaluator`` from a ``RunConfig``,
  with the run folder's handlers (:mod:`~medseg_monai.engines.handlers`) and checkpoints;
- :mod:`~medseg_monai.engines.predictor`: the :class:`Predictor`, one image in, one mask out
  (sliding window in :mod:`~medseg_monai.engines.stitching`, resampling in
  :mod:`~medseg_monai.engines.resampling`, post-processing in :mod:`~medseg_monai.engines.postprocessing`);
- :mod:`~medseg_monai.engines.batch`: :func:`run_batch`, a Predictor over many inputs (skip-done,
  sharding, the manifest of :mod:`~medseg_monai.engines.manifest`, the QA report).
"""

from medseg_monai.engines.batch import MANIFEST_NAME, REPORT_NAME, CaseResult, Shard, failures, predict_case, resolve_shard, run_batch
from medseg_monai.engines.checkpoint import load_checkpoint, save_checkpoint
from medseg_monai.engines.predictor import Predictor
from medseg_monai.engines.train import TrainResult, make_splits, train

__all__ = [
    "MANIFEST_NAME",
    "REPORT_NAME",
    "CaseResult",
    "Predictor",
    "Shard",
    "TrainResult",
    "failures",
    "load_checkpoint",
    "make_splits",
    "predict_case",
    "resolve_shard",
    "run_batch",
    "save_checkpoint",
    "train",
]
