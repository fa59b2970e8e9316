"""Python API: the same stages the ``medseg`` CLI runs, as functions.

    from medseg_monai import RunConfig, DataConfig, train, predict, evaluate
    result = train(RunConfig(data=DataConfig(data_dir="data/liver")), "runs/liver")
    predict("runs/liver", "new_scans/", "masks/")
    evaluate("masks/", "data/liver_test/")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg_monai.config import InferConfig
from medseg_monai.engines.predictor import CaseResult, Predictor
from medseg_monai.engines.train import TrainResult, train
from medseg_monai.evaluation import EvaluationResult, evaluate_folders

__all__ = ["train", "predict", "evaluate", "TrainResult", "CaseResult", "EvaluationResult"]


def predict(
    model: str | Path,
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    *,
    checkpoint: str = "best",
    infer: InferConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    num_parts: int | None = None,
    part_id: int | None = None,
    manifest: bool = True,
    report: bool | str | Path | None = None,
) -> list[CaseResult]:
    """Write a mask for every input into ``output_dir`` with the model in run folder (or checkpoint) ``model``.

    ``num_parts``/``part_id`` run one share of the cases (see :meth:`Predictor.predict`);
    ``report=True`` writes ``predict_report.html`` beside ``predict_manifest.json``.
    """
    predictor = Predictor.from_run(model, checkpoint=checkpoint, infer=infer)
    return predictor.predict(
        inputs, output_dir, overwrite=overwrite, progress=progress, num_parts=num_parts, part_id=part_id,
        manifest=manifest, report=report,
    )


evaluate = evaluate_folders
