"""The common recipe flow: split -> fit the schedule to the budget -> train -> predict -> evaluate -> report.

A run folder ``OUT/<network>/`` receives what :func:`medseg_monai.training.trainer.train` writes
(``config.json``, ``splits.json``, ``metrics.csv``, ``curves.png``, ``checkpoints/``) plus
``datalist.json`` (the split), ``predictions/`` (validation masks in the source format),
``evaluation/metrics_per_case.csv`` and ``metrics_summary.json`` (Dice, IoU, precision, recall,
accuracy, HD95, ASD per case and class), ``best_worst.png``, ``recipe.log`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.config import BatchOptions, InferConfig, RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.recipes.catalog import RECIPES
from medseg_monai.recipes.spec import Recipe, resolve_data_root, split_cases
from medseg_monai.utils import atomic_write_text, package_versions

__all__ = ["SMOKE_CASES", "canonical_command", "fit_schedule", "get_recipe", "run_recipe", "score_predictions"]

logger = logging.getLogger(__name__)

#: training and validation cases kept by ``--smoke``
SMOKE_CASES = (6, 2)
#: steps per probe epoch; how many validations a fitted schedule aims at, and their largest share of the budget
PROBE_STEPS = 5
TARGET_VALIDATIONS = 20
VALIDATION_SHARE = 0.1
#: share of the remaining budget the fitted epochs may fill (the rest absorbs timing noise)
BUDGET_SAFETY = 0.95


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A registered recipe by name (``ValueError`` naming the known ones), or the recipe itself."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[recipe]


def canonical_command(
    name: str,
    network: str,
    out: Path,
    time_budget_min: float,
    smoke: bool,
    seed: int,
    data_root: str | Path | None = None,
    pretrained: str | None = None,
    epochs: int | None = None,
    checkpoint: str = "last",
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """The ``medseg run`` line that repeats a run."""
    parts = [
        "medseg",
        "run",
        f"pipelines/{name}.py",
        "--network",
        network,
        "--time-budget-min",
        f"{time_budget_min:g}",
        "--seed",
        str(seed),
    ]
    if smoke:
        parts.append("--smoke")
    if epochs is not None:
        parts += ["--epochs", str(epochs)]
    if pretrained:
        parts += ["--pretrained", str(pretrained)]
    if checkpoint != "last":
        parts += ["--checkpoint", checkpoint]
    for key, value in (overrides or {}).items():
        parts += ["--set", f"{key}={json.dumps(value)}"]
    if data_root:
        parts += ["--data-root", str(data_root)]
    parts += ["--out", str(out)]
    return shlex.join(parts)


def _subset(items: Sequence[dict], count: int, seed: int) -> list[dict]:
    if len(items) <= count:
        return list(items)
    chosen = random.Random(seed).sample(list(items), count)
    return sorted(chosen, key=lambda item: item["name"])


def _write_datalist(path: Path, train_items: Sequence[dict], val_items: Sequence[dict]) -> Path:
    def entries(items: Sequence[dict]) -> list[dict]:
        return [{"image": item["image"], "label": item["label"], "name": item["name"]} for item in items]

    return atomic_write_text(
        path, json.dumps({"training": entries(train_items), "validation": entries(val_items)}, indent=2) + "\n"
    )


def _steps_per_epoch(config: RunConfig, n_train: int) -> int:
    return config.train.iterations_per_epoch or math.ceil(n_train / config.train.batch_size)


def fit_schedule(config: RunConfig, run_dir: Path, budget_min: float, n_train: int) -> tuple[RunConfig, dict]:
    """Choose ``epochs`` and ``val_interval`` so the cosine schedule ends when the budget does.

    A probe trains three short epochs (``PROBE_STEPS`` steps each, validation on the third) into
    ``run_dir/schedule_probe`` (removed afterwards) to time a training step and a validation pass on
    this machine. The rest of the budget is filled with whole epochs with up to ``TARGET_VALIDATIONS``
    validations among them (fewer when they would take more than ``VALIDATION_SHARE`` of the budget);
    ``train.epochs`` stays the upper bound of this plan. Five probe steps can misjudge a long run's
    epochs and a machine can slow down mid-run, so the returned config sets ``train.schedule_by_time``:
    the learning rate follows the elapsed share of the budget, and training runs until the budget is
    spent (up to ``train.epochs``), whatever the epochs cost.

    Returns:
        The config to train with (``epochs``, ``val_interval``, ``time_budget_min`` set) and the timings.
    """
    from medseg_monai.training.trainer import train

    steps = _steps_per_epoch(config, n_train)
    probe_steps = min(steps, PROBE_STEPS)
    probe_train = dataclasses.replace(
        config.train,
        epochs=3,
        iterations_per_epoch=probe_steps,
        val_interval=3,
        time_budget_min=None,
        freeze_backbone_epochs=0,
    )
    probe_dir = run_dir / "schedule_probe"
    start = time.perf_counter()
    try:
        history = train(dataclasses.replace(config, train=probe_train), probe_dir).history
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    probe_s = time.perf_counter() - start
    step_s = min(history[0]["epoch_time_s"], history[1]["epoch_time_s"]) / probe_steps
    val_s = max(history[2]["epoch_time_s"] - history[1]["epoch_time_s"], 0.0)
    remaining_s = max(budget_min * 60.0 - probe_s, 0.0)
    usable_s = BUDGET_SAFETY * remaining_s
    train_epoch_s = max(steps * step_s, 1e-6)
    validations = max(1, min(TARGET_VALIDATIONS, int(VALIDATION_SHARE * usable_s / max(val_s, 1e-6))))
    val_interval = max(1, math.ceil(usable_s / train_epoch_s / validations))
    epochs = int(usable_s // (train_epoch_s + val_s / val_interval))
    epochs = max(2, min(epochs, config.train.epochs))
    val_interval = min(val_interval, epochs)
    timings = {
        "probe_s": round(probe_s, 1),
        "step_s": round(step_s, 3),
        "validation_s": round(val_s, 1),
        "steps_per_epoch": steps,
        "epochs": epochs,
        "val_interval": val_interval,
        "train_budget_s": round(remaining_s, 1),
    }
    logger.info("schedule fitted to the budget: %s", timings)
    train_cfg = dataclasses.replace(
        config.train, val_interval=val_interval, time_budget_min=remaining_s / 60.0, schedule_by_time=True
    )
    return dataclasses.replace(config, train=train_cfg), timings


def _versions() -> dict[str, str]:
    import torch

    versions = package_versions()
    versions["torch_threads"] = str(torch.get_num_threads())
    versions["cpu_count"] = str(os.cpu_count())
    versions["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return versions


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


def _prepare_config(
    recipe: Recipe,
    network: str,
    smoke: bool,
    dataset_dir: Path,
    datalist: Path,
    seed: int,
    pretrained: str | None,
    overrides: Mapping[str, Any] | None,
) -> RunConfig:
    config = recipe.config(network, smoke=smoke)
    if pretrained and config.model.name != "deeplabv3":
        raise ConfigError(f"--pretrained loads DeepLabV3 backbone weights; network {network!r} takes none")
    data = dataclasses.replace(config.data, data_dir=str(dataset_dir), datalist=str(datalist), seed=seed)
    model = dataclasses.replace(
        config.model, pretrained=str(Path(pretrained).expanduser().resolve()) if pretrained else None
    )
    config = dataclasses.replace(config, data=data, model=model, train=dataclasses.replace(config.train, seed=seed))
    if pretrained and not Path(model.pretrained).is_file():
        raise FileNotFoundError(f"{pretrained}: pretrained weights file not found")
    return config.override(dict(overrides)) if overrides else config


def run_recipe(
    name: str | Recipe,
    network: str = "unet",
    out: str | Path | None = None,
    time_budget_min: float = 30.0,
    smoke: bool = False,
    data_root: str | Path | None = None,
    seed: int = 0,
    *,
    pretrained: str | None = None,
    epochs: int | None = None,
    checkpoint: str = "last",
    overrides: Mapping[str, Any] | None = None,
    score_only: bool = False,
) -> dict:
    """Train, predict and evaluate one recipe into ``out/<network>/``; return its summary.

    Args:
        name: a registered recipe name (see ``RECIPES``) or a :class:`Recipe`.
        network: one of the recipe's networks, or ``all`` (each in turn; the result is then
            ``{"recipe": name, "runs": {network: summary}}``).
        out: parent folder of the run folders (default ``runs/<name>``).
        time_budget_min: wall-clock training budget in minutes (schedule probe included).
        smoke: a couple of minutes on a few cases, to check the wiring (numbers mean nothing).
        data_root: folder holding the datasets; default ``$MEDSEG_DATA_DIR`` or ``../shared/data``.
        seed: seed of the split, the weights and the sampling.
        pretrained: DeepLabV3 only: local backbone weights; enables the two-stage schedule (frozen
            backbone for the first fifth of the epochs, then all layers at a tenth of the rate).
        epochs: fixed number of epochs instead of fitting them to the budget (which still stops the run).
        checkpoint: ``last`` (default: the end of the annealed schedule, not selected on the
            validation cases it is scored on) or ``best`` (best validation Dice during training).
        overrides: dotted config overrides applied last, e.g. ``{"train.learning_rate": 1e-3}``.
        score_only: keep the trained run in ``out/<network>/`` and only predict and score its validation
            cases again, with the recipe's current inference settings (and ``infer.*`` overrides).

    Raises:
        FileNotFoundError: the data root or the dataset folder is missing (the message says how to fix it).
        ValueError: unknown recipe or network, or an invalid override.
    """
    recipe = get_recipe(name)
    if time_budget_min <= 0:
        raise ConfigError(f"time_budget_min must be positive, got {time_budget_min}")
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if network != "all":
        recipe.config(network)  # unknown networks fail before any work
    root = resolve_data_root(data_root, recipe.dataset)
    out = Path(out) if out else Path("runs") / recipe.name
    kwargs = dict(
        time_budget_min=time_budget_min,
        smoke=smoke,
        data_root=data_root,
        seed=seed,
        pretrained=pretrained,
        epochs=epochs,
        checkpoint=checkpoint,
        overrides=overrides,
        score_only=score_only,
    )
    if network == "all":
        takes_weights = {each for each in recipe.networks if recipe.config(each).model.name == "deeplabv3"}
        if pretrained and takes_weights:
            logger.info("--pretrained applies to deeplabv3 only")
        runs = {}
        for each in recipe.networks:
            each_kwargs = dict(kwargs, pretrained=pretrained if each in takes_weights else None)
            runs[each] = _run_one(recipe, each, out, root, **each_kwargs)
        return {"recipe": recipe.name, "runs": runs}
    return _run_one(recipe, network, out, root, **kwargs)


def _run_one(
    recipe: Recipe,
    network: str,
    out: Path,
    root: Path,
    *,
    time_budget_min: float,
    smoke: bool,
    data_root,
    seed: int,
    pretrained: str | None,
    epochs: int | None,
    checkpoint: str,
    overrides: Mapping[str, Any] | None,
    score_only: bool = False,
) -> dict:
    from medseg_monai.data.datalist import discover_pairs
    from medseg_monai.training.trainer import train

    run_dir = out / network
    if score_only:
        return _rescore(
            recipe, network, run_dir, root, smoke=smoke, seed=seed, checkpoint=checkpoint, overrides=overrides
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").unlink(missing_ok=True)  # a failed rerun must not leave an old result behind
    log_handler = logging.FileHandler(run_dir / "recipe.log", mode="w")
    log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("medseg_monai")
    package_logger.addHandler(log_handler)
    saved_level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:  # the run's log file always gets INFO
        package_logger.setLevel(logging.INFO)
    try:
        dataset_dir = root / recipe.dataset
        train_items, val_items = split_cases(recipe.split, discover_pairs(dataset_dir), seed)
        if smoke:
            train_items, val_items = (
                _subset(train_items, SMOKE_CASES[0], seed),
                _subset(val_items, SMOKE_CASES[1], seed),
            )
        datalist = _write_datalist(run_dir / "datalist.json", train_items, val_items)
        config = _prepare_config(recipe, network, smoke, dataset_dir, datalist, seed, pretrained, overrides)
        logger.info(
            "%s/%s: %d training, %d validation cases -> %s",
            recipe.name,
            network,
            len(train_items),
            len(val_items),
            run_dir,
        )

        start = time.perf_counter()
        timings: dict[str, Any] = {}
        if epochs is not None or smoke:
            train_cfg = dataclasses.replace(config.train, time_budget_min=time_budget_min)
            if epochs is not None:
                train_cfg = dataclasses.replace(
                    train_cfg, epochs=epochs, val_interval=min(train_cfg.val_interval, epochs)
                )
            config = dataclasses.replace(config, train=train_cfg)
        else:
            config, timings = fit_schedule(config, run_dir, time_budget_min, len(train_items))
        if pretrained and config.train.freeze_backbone_epochs == 0:
            freeze = max(1, config.train.epochs // 5)
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=freeze))
        result = train(config, run_dir)
        train_s = time.perf_counter() - start

        summary = _evaluate(recipe, network, run_dir, dataset_dir, val_items, checkpoint)
        summary.update(
            kind="smoke" if smoke else ("full" if time_budget_min >= 30 else "trial"),
            time_budget_min=time_budget_min,
            seed=seed,
            cases={"training": len(train_items), "validation": len(val_items)},
            epochs_planned=config.train.epochs,
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            best_val_mean_dice_during_training=result.best_metric,
            last_epoch=result.history[-1] if result.history else {},
            train_seconds=round(train_s, 1),
            schedule=timings,
            pretrained=config.model.pretrained,
            freeze_backbone_epochs=config.train.freeze_backbone_epochs,
            command=canonical_command(
                recipe.name,
                network,
                out,
                time_budget_min,
                smoke,
                seed,
                data_root,
                pretrained,
                epochs,
                checkpoint,
                overrides,
            ),
            versions=_versions(),
        )
        atomic_write_text(run_dir / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
        headline = summary["headline"]
        logger.info(
            "%s/%s: %s %.4f (target %s) after %d epochs, %.0f s",
            recipe.name,
            network,
            headline["name"],
            headline["value"],
            headline["target"],
            result.epochs_run,
            train_s,
        )
        return summary
    finally:
        package_logger.removeHandler(log_handler)
        package_logger.setLevel(saved_level)
        log_handler.close()


def _evaluate(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    dataset_dir: Path,
    val_items: Sequence[dict],
    checkpoint: str,
    infer: InferConfig | None = None,
) -> dict:
    from medseg_monai.batch import run_batch
    from medseg_monai.inference import Predictor

    predictions_dir = run_dir / "predictions"
    shutil.rmtree(predictions_dir, ignore_errors=True)
    predictor = Predictor.from_run(run_dir, checkpoint=checkpoint, infer=infer)
    options = BatchOptions(overwrite=True, progress=False)
    results = run_batch(predictor, [item["image"] for item in val_items], predictions_dir, options)
    summary = score_predictions(recipe, network, run_dir, dataset_dir, val_items, predictions_dir)
    summary.update(
        checkpoint=checkpoint,
        infer=dataclasses.asdict(predictor.config.infer),
        failed_predictions=[r.error for r in results if not r.ok],
        predict_seconds=round(sum(r.seconds for r in results), 1),
    )
    summary["files"]["checkpoint"] = str(Path("checkpoints") / f"{checkpoint}.pt")
    return summary


def _rescore(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    root: Path,
    *,
    smoke: bool,
    seed: int,
    checkpoint: str,
    overrides: Mapping[str, Any] | None,
) -> dict:
    """Predict and score a finished run's validation cases again; training fields of its summary are kept."""
    summary_path, datalist_path = run_dir / "summary.json", run_dir / "datalist.json"
    for path in (summary_path, datalist_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no finished run to score; train it first (without --score-only)")
    previous = json.loads(summary_path.read_text(encoding="utf-8"))
    val_items = json.loads(datalist_path.read_text(encoding="utf-8"))["validation"]
    infer_overrides = {k: v for k, v in (overrides or {}).items() if k.startswith("infer.")}
    if len(infer_overrides) != len(overrides or {}):
        raise ConfigError(
            f"--score-only takes infer.* overrides only, got {sorted(set(overrides or {}) - set(infer_overrides))}"
        )
    infer = recipe.config(network, smoke=smoke).override(infer_overrides).infer
    dataset_dir = root / recipe.dataset
    summary = _evaluate(recipe, network, run_dir, dataset_dir, val_items, checkpoint, infer=infer)
    scoring_keys = set(summary)
    summary = {**previous, **summary}
    summary["rescored"] = {
        "previous_headline": previous.get("headline"),
        "command": previous.get("command", "")
        + " --score-only"
        + "".join(f" --set {k}={json.dumps(v)}" for k, v in infer_overrides.items()),
        "fields": sorted(scoring_keys),
        "versions": _versions(),  # the top-level versions stay those of the training run
    }
    atomic_write_text(summary_path, json.dumps(_jsonable(summary), indent=2) + "\n")
    headline = summary["headline"]
    logger.info(
        "%s/%s scored again: %s %.4f (was %.4f)",
        recipe.name,
        network,
        headline["name"],
        headline["value"],
        (previous.get("headline") or {}).get("value") or math.nan,
    )
    return summary


def score_predictions(
    recipe: Recipe, network: str, run_dir: Path, dataset_dir: Path, val_items: Sequence[dict], predictions_dir: Path
) -> dict:
    """Evaluate the validation masks in ``predictions_dir`` (inside the recipe's ROI masks when it has
    them), draw the best/worst figure, and return the summary's metric part."""
    from medseg_monai.evaluation import best_and_worst, case_scores, evaluate_folders, pooled_by_group, pooled_metrics
    from medseg_monai.io import mask_filename
    from medseg_monai.reporting import CaseRow, save_case_figure

    start = time.perf_counter()
    roi_dir = dataset_dir / recipe.roi_dir if recipe.roi_dir else None
    if roi_dir is not None and not roi_dir.is_dir():
        raise FileNotFoundError(f"{roi_dir}: region-of-interest folder of recipe {recipe.name!r} not found")
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
    scores = case_scores(evaluation.rows, recipe.primary_labels, recipe.headline_metric)
    best, worst = best_and_worst(scores)
    cases = {item["name"]: item for item in val_items}
    predictions = {item["name"]: predictions_dir / mask_filename(item["image"]) for item in val_items}
    rows = [
        CaseRow(
            f"{tag}: {name} ({recipe.headline_metric} {score:.3f})",
            cases[name]["image"],
            cases[name]["label"],
            predictions[name],
        )
        for tag, ranked in (("best", best), ("worst", worst))
        for name, score in ranked
        if name in cases and predictions[name].exists()
    ]
    figure = save_case_figure(
        rows,
        run_dir / "best_worst.png",
        recipe.primary_labels,
        title=f"{recipe.name} / {network}: best and worst validation cases",
    )
    values = [evaluation.mean(recipe.headline_metric, label) for label in recipe.primary_labels]
    headline = float(sum(values) / len(values)) if values else math.nan
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "dataset": recipe.dataset,
        "description": recipe.description,
        "network": network,
        "run_dir": str(run_dir),
        "headline": {
            "name": recipe.headline,
            "metric": recipe.headline_metric,
            "labels": [recipe.eval_labels[v] for v in recipe.primary_labels],
            "value": headline,
            "target": recipe.target,
            "met": None if recipe.target is None else bool(headline >= recipe.target),
        },
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


def _jsonable(value: Any) -> Any:
    """NaN -> None so the summary is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
