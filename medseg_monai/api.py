"""Python API: the one front door. The ``medseg`` command, the bundles and the recipes call these functions.

    from medseg_monai import RunConfig, DataConfig, BatchOptions, train, predict, evaluate
    result = train(RunConfig(data=DataConfig(data_dir="data/liver")), "runs/liver")
    predict("runs/liver", "new_scans/", "masks/", options=BatchOptions(report="masks/predict_report.html"))
    evaluate("masks/", "data/liver_test/")

For more control, load a :class:`~medseg_monai.inference.Predictor` once (:func:`load_predictor`) and hand it
to :func:`predict` (many inputs) or call its ``predict_image`` (one image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg_monai.batch import (
    MANIFEST_NAME,
    REPORT_NAME,
    STATISTICS_NAME,
    CaseResult,
    Shard,
    failures,
    resolve_shard,
    run_batch,
    wait_for_parts,
)
from medseg_monai.config import BatchOptions, InputChecks
from medseg_monai.data import discover_pairs, generate_dataset
from medseg_monai.errors import ConfigError
from medseg_monai.evaluation import EvaluationResult, evaluate_folders
from medseg_monai.inference import (
    STANDARD_IDS,
    InferSettings,
    Predictor,
    RuntimeSettings,
    standard_inference_config,
    write_standard_config,
)
from medseg_monai.models import ARTEFACT_SUFFIXES, ExportResult, artefact_format, export_artefact, load_checkpoint
from medseg_monai.networks import build_network
from medseg_monai.training import TrainResult, make_splits, train

__all__ = [
    "ARTEFACT_SUFFIXES",
    "MANIFEST_NAME",
    "REPORT_NAME",
    "STANDARD_IDS",
    "STATISTICS_NAME",
    "CaseResult",
    "EvaluationResult",
    "ExportResult",
    "InferSettings",
    "Predictor",
    "RuntimeSettings",
    "Shard",
    "TrainResult",
    "build_network",
    "discover_pairs",
    "generate_dataset",
    "evaluate",
    "export",
    "failures",
    "load_checkpoint",
    "load_predictor",
    "make_splits",
    "predict",
    "resolve_shard",
    "standard_inference_config",
    "train",
    "wait_for_parts",
    "write_standard_config",
]


def load_predictor(
    model: str | Path,
    *,
    checkpoint: str = "best",
    infer: InferSettings = None,
    runtime: RuntimeSettings = None,
    checks: InputChecks | None = None,
) -> Predictor:
    """The :class:`~medseg_monai.inference.Predictor` of a run folder, a checkpoint file or an exported model.

    ``checkpoint`` is ``best``, ``last`` or a file path (run folders only); ``infer`` an
    :class:`~medseg_monai.config.InferConfig` or a mapping of changes to the run's own inference settings;
    ``runtime`` a :class:`~medseg_monai.config.RuntimeConfig` or changes to the run's device, precision and
    layout (``{"device": "cpu"}``); ``checks`` how odd images are handled
    (:class:`~medseg_monai.config.InputChecks`: NaN voxels, 4D volumes).
    """
    return Predictor.from_run(model, checkpoint=checkpoint, infer=infer, checks=checks, runtime=runtime)


def predict(
    model: str | Path | Predictor,
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    *,
    checkpoint: str = "best",
    infer: InferSettings = None,
    runtime: RuntimeSettings = None,
    options: BatchOptions | None = None,
    checks: InputChecks | None = None,
    shard: Shard | None = None,
) -> list[CaseResult]:
    """Write a mask for every input into ``output_dir``; one :class:`CaseResult` per case of this part.

    ``model`` is a loaded Predictor, or what :func:`load_predictor` takes (with ``checkpoint``, ``infer``,
    ``runtime`` and ``checks``); ``options`` says how the batch runs (see :func:`~medseg_monai.batch.run_batch`);
    ``shard`` is this process's part when already resolved (:func:`resolve_shard`).
    """
    if isinstance(model, Predictor):
        if infer is not None or runtime is not None or checks is not None or checkpoint != "best":
            raise ConfigError(
                "predict with a loaded Predictor takes no checkpoint, infer, runtime or checks "
                "(use with_infer or with_runtime)"
            )
        predictor = model
    else:
        predictor = load_predictor(model, checkpoint=checkpoint, infer=infer, runtime=runtime, checks=checks)
    return run_batch(predictor, inputs, output_dir, options, shard)


def export(model: str | Path, path: str | Path, *, checkpoint: str = "best", fmt: str | None = None) -> ExportResult:
    """Write the model of a run folder or checkpoint as one ONNX or TorchScript file (``fmt``: from the suffix).

    The file carries the network and the run's whole config, so :func:`load_predictor` runs it end to end.
    """
    chosen = artefact_format(path, fmt)
    if str(model).lower().endswith(ARTEFACT_SUFFIXES):
        raise ConfigError(f"--model {model}: already an exported model; export takes a run folder or checkpoint")
    predictor = load_predictor(model, checkpoint=checkpoint)
    return export_artefact(predictor.network, predictor.config, path, chosen)


evaluate = evaluate_folders
