"""Trained models: checkpoints, exported ONNX/TorchScript artefacts, and the facts the manifest records of them.

A model is loaded from a run folder, a checkpoint or an exported artefact by :func:`load_model`; the
:class:`~medseg_monai.inference.Predictor` is built on what it returns.
"""

from medseg_monai.models.artefact import (
    ARTEFACT_SUFFIXES,
    ExportResult,
    artefact_format,
    export_artefact,
    load_artefact,
)
from medseg_monai.models.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from medseg_monai.models.provenance import model_facts, weights_sha256

__all__ = [
    "ARTEFACT_SUFFIXES",
    "ExportResult",
    "artefact_format",
    "export_artefact",
    "load_artefact",
    "load_checkpoint",
    "load_latest_checkpoint",
    "model_facts",
    "save_checkpoint",
    "weights_sha256",
]
