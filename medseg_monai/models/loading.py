"""Loading a trained model from a run folder, a checkpoint file or an exported artefact.

:func:`load_model` is what ``Predictor.from_run`` (and so ``medseg predict --model``) reads: the network with
its weights, the run configuration it was trained with, the file it came from, and the inference settings
that file's format fixes (an exported model runs in float32, contiguous, on its export's windows for ONNX).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medseg_monai.config import RunConfig
from medseg_monai.errors import CheckpointError
from medseg_monai.models.artefact import ARTEFACT_SUFFIXES, load_artefact
from medseg_monai.models.checkpoint import load_checkpoint
from medseg_monai.networks import build_network

__all__ = ["LoadedModel", "load_artefact_model", "load_checkpoint_model", "load_model"]


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A network with its weights and its run configuration.

    ``fixed_runtime`` holds the runtime settings the file's format imposes (they override any caller's);
    ``fixed_roi`` the only window size it takes (ONNX artefacts), else ``None``.
    """

    network: torch.nn.Module
    config: RunConfig
    source: Path
    fixed_runtime: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fixed_roi: tuple[int, ...] | None = None


def load_checkpoint_model(checkpoint: str | Path, config: RunConfig | None = None) -> LoadedModel:
    """The network of one checkpoint file; its embedded config is used unless ``config`` is given."""
    payload = load_checkpoint(checkpoint)
    if config is None:
        if "config" not in payload:
            raise CheckpointError(f"{checkpoint}: checkpoint carries no config; pass the run's config.json")
        config = RunConfig.from_dict(payload["config"])
    network = build_network(config, load_pretrained=False)
    try:
        network.load_state_dict(payload["network"])
    except RuntimeError as err:
        details = [line.strip() for line in str(err).strip().splitlines()[1:] if line.strip()]
        first = details[0] if details else str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"{checkpoint}: weights do not fit network {config.model.name!r} "
            f"with options {dict(config.model.options)} ({first[:200]})"
        ) from None
    return LoadedModel(network, config, Path(checkpoint))


def load_artefact_model(path: str | Path) -> LoadedModel:
    """The network of an exported model (``medseg export``: ``.onnx``, ``.ts``), contiguous as exported.

    A TorchScript model runs under the caller's ``runtime.precision`` (bf16 autocast where the CPU has it, as
    its run folder does); an ONNX model in the precision its metadata states (ONNX Runtime: float32).
    """
    network, config = load_artefact(path)
    onnx = Path(path).suffix.lower() == ".onnx"
    fixed = {"memory_format": "contiguous"}
    if onnx:
        fixed["precision"] = network.precision
    return LoadedModel(network, config, Path(path), fixed, tuple(config.roi_size) if onnx else None)


def load_model(model: str | Path, checkpoint: str = "best") -> LoadedModel:
    """The model of a run folder (``checkpoint``: ``best``, ``last`` or a file path), a checkpoint file or an
    exported artefact."""
    if str(model).lower().endswith(ARTEFACT_SUFFIXES) and not Path(model).is_dir():  # medseg export's file
        return load_artefact_model(model)
    run_dir = Path(model)
    if not run_dir.is_dir():
        if run_dir.is_file():
            return load_checkpoint_model(run_dir)
        raise FileNotFoundError(f"{run_dir}: model folder not found")
    path = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.pt"
    config_path = run_dir / "config.json"
    return load_checkpoint_model(path, RunConfig.load(config_path) if config_path.is_file() else None)
