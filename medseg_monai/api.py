"""Python API: the stages the ``medseg`` command runs, as functions.

    from medseg_monai import RunConfig, DataConfig, BatchOptions, train, predict, evaluate
    result = train(RunConfig(data=DataConfig(data_dir="data/liver")), "runs/liver")
    predict("runs/liver", "new_scans/", "masks/", options=BatchOptions(report="masks/predict_report.html"))
    evaluate("masks/", "data/liver_test/")

For more control, load a :class:`~medseg_monai.inference.Predictor` once and hand it to
:func:`~medseg_monai.batch.run_batch` (many inputs) or call its ``predict_image`` (one image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg_monai.config import BatchOptions, InputChecks
from medseg_monai.batch import CaseResult, run_batch
from medseg_monai.inference import Predictor
from medseg_monai.training import TrainResult, train
from medseg_monai.inference.predictor import InferSettings
from medseg_monai.evaluation import EvaluationResult, evaluate_folders

__all__ = ["CaseResult", "EvaluationResult", "TrainResult", "evaluate", "predict", "train"]


def predict(
    model: str | Path,
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    *,
    checkpoint: str = "best",
    infer: InferSettings = None,
    options: BatchOptions | None = None,
    checks: InputChecks | None = None,
) -> list[CaseResult]:
    """Write a mask for every input into ``output_dir`` with the model in run folder (or checkpoint) ``model``.

    ``infer`` is an :class:`~medseg_monai.config.InferConfig` or a mapping of changes to the run's own
    inference settings; ``options`` says how the batch runs (see :func:`~medseg_monai.batch.run_batch`);
    ``checks`` how odd images are handled (:class:`~medseg_monai.config.InputChecks`: NaN voxels, 4D volumes).
    """
    predictor = Predictor.from_run(model, checkpoint=checkpoint, infer=infer, checks=checks)
    return run_batch(predictor, inputs, output_dir, options)


evaluate = evaluate_folders
