"""medseg-monai: medical-image segmentation on MONAI.

Train a network on 2D slices or 3D volumes, measure it, and turn folders of new images into masks
written in their source's format and geometry.

The public names below are imported on first use, so ``import medseg_monai`` (and the ``medseg``
command's ``--help``) stays fast; ``from medseg_monai import Predictor`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BatchOptions": "medseg_monai.config",
    "DataConfig": "medseg_monai.config",
    "InferConfig": "medseg_monai.config",
    "InputChecks": "medseg_monai.config",
    "InputError": "medseg_monai.errors",
    "ConfigError": "medseg_monai.errors",
    "CheckpointError": "medseg_monai.errors",
    "MedsegError": "medseg_monai.errors",
    "ModelConfig": "medseg_monai.config",
    "RunConfig": "medseg_monai.config",
    "RuntimeConfig": "medseg_monai.config",
    "TrainConfig": "medseg_monai.config",
    "CaseResult": "medseg_monai.batch",
    "Predictor": "medseg_monai.inference",
    "TrainResult": "medseg_monai.training",
    "run_batch": "medseg_monai.batch",
    "build_network": "medseg_monai.networks",
    "resolve_data_config": "medseg_monai.data",
    "EvaluationResult": "medseg_monai.evaluation",
    "available_networks": "medseg_monai.networks",
    "create_network": "medseg_monai.networks",
    "evaluate": "medseg_monai.api",
    "predict": "medseg_monai.api",
    "train": "medseg_monai.api",
    "generate_dataset": "medseg_monai.data.synthetic",
    "discover_pairs": "medseg_monai.data.datalist",
    "write_mask": "medseg_monai.io",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medseg_monai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static analysers see the real names
    from medseg_monai.api import evaluate, predict, train
    from medseg_monai.batch import CaseResult, run_batch
    from medseg_monai.config import (
        BatchOptions,
        DataConfig,
        InferConfig,
        InputChecks,
        ModelConfig,
        RunConfig,
        RuntimeConfig,
        TrainConfig,
    )
    from medseg_monai.data import resolve_data_config
    from medseg_monai.data.datalist import discover_pairs
    from medseg_monai.data.synthetic import generate_dataset
    from medseg_monai.errors import CheckpointError, ConfigError, InputError, MedsegError
    from medseg_monai.evaluation import EvaluationResult
    from medseg_monai.inference import Predictor
    from medseg_monai.io import write_mask
    from medseg_monai.networks import available_networks, build_network, create_network
    from medseg_monai.training import TrainResult
