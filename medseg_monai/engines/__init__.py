"""Training and inference engines built on MONAI's ignite workflows."""

from medseg_monai.engines.batch import MANIFEST_NAME, REPORT_NAME, Shard, resolve_shard
from medseg_monai.engines.checkpoint import load_checkpoint, save_checkpoint
from medseg_monai.engines.predictor import CaseResult, Predictor
from medseg_monai.engines.train import TrainResult, build_network, make_splits, train

__all__ = [
    "MANIFEST_NAME",
    "REPORT_NAME",
    "CaseResult",
    "Predictor",
    "Shard",
    "TrainResult",
    "build_network",
    "load_checkpoint",
    "make_splits",
    "resolve_shard",
    "save_checkpoint",
    "train",
]
