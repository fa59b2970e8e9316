"""Predicting a run's validation cases and scoring them: ``predictions/``, ``evaluation/``, ``best_worst.png``
and the metric part of ``summary.json``."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg_monai.config import BatchOptions
from medseg_monai.recipes.spec import Recipe

if TYPE_CHECKING:
    from medseg_monai.api import InferSettings
    from medseg_monai.evaluation import EvaluationResult

__all__ = ["predict_and_score", "score_predictions"]


def predict_and_score(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    dataset_dir: Path,
    val_items: Sequence[dict],
    checkpoint: str,
    infer: InferSettings = None,
) -> dict:
    """Predict the validation cases into ``run_dir/predictions`` with ``checkpoint`` (and ``infer``, changes to
    the run's own inference settings), score them, and return the summary's prediction and metric part."""
    from medseg_monai.api import failures, load_predictor, predict

    predictions_dir = run_dir / "predictions"
    shutil.rmtree(predictions_dir, ignore_errors=True)
    predictor = load_predictor(run_dir, checkpoint=checkpoint, infer=infer)
    options = BatchOptions(overwrite=True, progress=False)
    results = predict(predictor, [item["image"] for item in val_items], predictions_dir, options=options)
    summary = score_predictions(recipe, network, run_dir, dataset_dir, val_items, predictions_dir)
    summary.update(
        checkpoint=checkpoint,
        infer=dataclasses.asdict(predictor.plan.settings),
        failed_predictions=[r.error for r in failures(results)],
        predict_seconds=round(sum(r.seconds for r in results), 1),
    )
    summary["files"]["checkpoint"] = str(Path("checkpoints") / f"{checkpoint}.pt")
    return summary


def _truth_folder(run_dir: Path, cases: Sequence[dict]) -> Path:
    """The validation masks gathered (as links, else copies) in one folder, named by case."""
    from medseg_monai.io import split_suffix

    folder = run_dir / "validation_truth"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for case in cases:
        source = Path(case["label"]).resolve()
        target = folder / (case["name"] + split_suffix(source)[1])
        try:
            target.symlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    return folder


def _roi_folder(recipe: Recipe, dataset_dir: Path) -> Path | None:
    """The recipe's region-of-interest masks, where it has them."""
    roi_dir = dataset_dir / recipe.roi_dir if recipe.roi_dir else None
    if roi_dir is not None and not roi_dir.is_dir():
        raise FileNotFoundError(f"{roi_dir}: region-of-interest folder of recipe {recipe.name!r} not found")
    return roi_dir


def _best_worst_figure(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    val_items: Sequence[dict],
    predictions_dir: Path,
    ranking: Sequence[tuple[str, Sequence[tuple[str, float]]]],
) -> Path:
    """``run_dir/best_worst.png``: image, truth and prediction of the ranked cases that have a prediction."""
    from medseg_monai.io import mask_filename
    from medseg_monai.reporting import CaseRow, save_case_figure

    cases = {item["name"]: item for item in val_items}
    predictions = {item["name"]: predictions_dir / mask_filename(item["image"]) for item in val_items}
    rows = [
        CaseRow(
            f"{tag}: {name} ({recipe.headline_metric} {score:.3f})",
            cases[name]["image"],
            cases[name]["label"],
            predictions[name],
        )
        for tag, ranked in ranking
        for name, score in ranked
        if name in cases and predictions[name].exists()
    ]
    return save_case_figure(
        rows,
        run_dir / "best_worst.png",
        recipe.primary_labels,
        title=f"{recipe.name} / {network}: best and worst validation cases",
    )


def _headline(recipe: Recipe, evaluation: EvaluationResult) -> dict[str, Any]:
    """The recipe's headline: its metric averaged over the primary labels, and whether it meets the target."""
    values = [evaluation.mean(recipe.headline_metric, label) for label in recipe.primary_labels]
    headline = float(sum(values) / len(values)) if values else math.nan
    return {
        "name": recipe.headline,
        "metric": recipe.headline_metric,
        "labels": [recipe.eval_labels[v] for v in recipe.primary_labels],
        "value": headline,
        "target": recipe.target,
        "met": None if recipe.target is None else bool(headline >= recipe.target),
    }


def score_predictions(
    recipe: Recipe, network: str, run_dir: Path, dataset_dir: Path, val_items: Sequence[dict], predictions_dir: Path
) -> dict:
    """Evaluate the validation masks in ``predictions_dir`` (inside the recipe's ROI masks when it has
    them), draw the best/worst figure, and return the summary's metric part."""
    from medseg_monai.evaluation import best_and_worst, case_scores, evaluate_folders, pooled_by_group, pooled_metrics

    start = time.perf_counter()
    roi_dir = _roi_folder(recipe, dataset_dir)
    evaluation = evaluate_folders(
        predictions_dir,
        _truth_folder(run_dir, val_items),
        output_dir=run_dir / "evaluation",
        labels=list(recipe.eval_labels),
        label_names=dict(recipe.eval_labels),
        surface=True,
        roi_dir=roi_dir,
    )
    evaluate_s = time.perf_counter() - start
    best, worst = best_and_worst(case_scores(evaluation.rows, recipe.primary_labels, recipe.headline_metric))
    ranking = (("best", best), ("worst", worst))
    figure = _best_worst_figure(recipe, network, run_dir, val_items, predictions_dir, ranking)
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "dataset": recipe.dataset,
        "description": recipe.description,
        "network": network,
        "run_dir": str(run_dir),
        "headline": _headline(recipe, evaluation),
        "roi": recipe.roi_dir,
        "distance_unit": "mm" if recipe.spatial_dims == 3 else "pixel",
        "metrics": evaluation.summary["per_label"],
        "mean_over_labels": evaluation.summary["mean"],
        "pooled": pooled_metrics(evaluation.rows),
        "best_cases": [{"case": c, "score": s} for c, s in best],
        "worst_cases": [{"case": c, "score": s} for c, s in worst],
        "evaluation_errors": evaluation.summary["errors"],
        "missing_predictions": evaluation.summary["missing_predictions"],
        "evaluate_seconds": round(evaluate_s, 1),
        "files": {
            "config": "config.json",
            "metrics_csv": "metrics.csv",
            "curves": "curves.png",
            "per_case_csv": str(Path("evaluation") / "metrics_per_case.csv"),
            "overlay": figure.name,
        },
    }
    if recipe.group_pattern:
        summary["pooled_per_patient"] = pooled_by_group(evaluation.rows, recipe.patient_of)
    return summary
