"""End-to-end demonstration on built-in synthetic data: synth -> train -> predict -> evaluate, 2D and 3D.

Everything lands in one folder::

    OUT/data2d, OUT/data3d            synthetic datasets (PNG slices; NIfTI volumes with an oblique affine)
    OUT/unet2d, OUT/unet3d            run folders: config.json, checkpoints/, metrics.csv, curves.png,
                                      predictions/ (validation masks in source format), evaluation/,
                                      predictions.png (image | truth | prediction for validation cases)
    OUT/summary.json                  validation Dice per class for both, and whether the targets are met
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from medseg_monai.config import BatchOptions, DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["DEMO_TARGET_DICE", "demo_configs", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_TARGET_DICE = 0.85
LABEL_NAMES = ("background", "organ", "lesion")


def demo_configs(out: Path, quick: bool = False) -> dict[str, RunConfig]:
    """The two demo runs; ``quick`` shrinks them to a smoke test (seconds, no accuracy target)."""
    epochs_2d, epochs_3d = (2, 2) if quick else (40, 40)
    unet_small = {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1}
    run2d = RunConfig(
        data=DataConfig(
            data_dir=str(out / "data2d"),
            spatial_dims=2,
            label_names=LABEL_NAMES,
            patch_size=(128, 128),
            samples_per_image=1,
            val_fraction=0.2,
        ),
        model=ModelConfig(name="unet", options=unet_small),
        train=TrainConfig(epochs=epochs_2d, batch_size=8, learning_rate=2e-3, val_interval=5 if not quick else 1),
        infer=InferConfig(overlap=0.25, sw_batch_size=4),
    )
    run3d = RunConfig(
        data=DataConfig(
            data_dir=str(out / "data3d"),
            spatial_dims=3,
            label_names=LABEL_NAMES,
            patch_size=(48, 48, 32),
            samples_per_image=2,
            val_fraction=0.2,
            intensity="zscore",
        ),
        model=ModelConfig(name="unet", options=unet_small),
        train=TrainConfig(epochs=epochs_3d, batch_size=2, learning_rate=2e-3, val_interval=5 if not quick else 1),
        infer=InferConfig(overlap=0.25, sw_batch_size=2),
    )
    return {"unet2d": run2d, "unet3d": run3d}


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, seed: int = 0) -> dict:
    """Run the whole demo into ``out`` and return the summary (also written to ``summary.json``)."""
    from medseg_monai.api import evaluate, predict, train
    from medseg_monai.data.synthetic import generate_dataset

    out = Path(out)
    n2d, n3d = (10, 6) if quick else (50, 24)
    shape3d = (40, 40, 24) if quick else (64, 64, 40)
    generate_dataset(out / "data2d", dims=2, n_cases=n2d, shape=(128, 128), seed=seed)
    generate_dataset(out / "data3d", dims=3, n_cases=n3d, shape=shape3d, seed=seed + 1)
    summary: dict = {"target_lesion_dice": DEMO_TARGET_DICE, "runs": {}}
    for name, config in demo_configs(out, quick).items():
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
        start = time.perf_counter()
        run_dir = out / name
        result = train(config, run_dir)
        splits = json.loads((run_dir / "splits.json").read_text(encoding="utf-8"))
        val_images = [case["image"] for case in splits["validation"]]
        predictions = run_dir / "predictions"
        results = predict(run_dir, val_images, predictions, options=BatchOptions(overwrite=True, progress=False))
        failed = [r for r in results if not r.ok]
        evaluation = evaluate(
            predictions,
            _truth_folder(config, splits, run_dir),
            output_dir=run_dir / "evaluation",
            label_names=dict(enumerate(LABEL_NAMES)),
        )
        lesion = evaluation.mean("dice", label=2)
        organ = evaluation.mean("dice", label=1)
        _prediction_figure(splits["validation"][:4], predictions, run_dir / "predictions.png", name)
        summary["runs"][name] = {
            "run_dir": str(run_dir),
            "best_val_mean_dice": result.best_metric,
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_run,
            "predicted_cases": len(results) - len(failed),
            "failed_cases": [r.error for r in failed],
            "dice_organ": organ,
            "dice_lesion": lesion,
            "lesion_target_met": lesion >= DEMO_TARGET_DICE,
            "seconds": round(time.perf_counter() - start, 1),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _truth_folder(config: RunConfig, splits: dict, run_dir: Path) -> Path:
    """The validation truth masks gathered as links in one folder, named by case."""
    from medseg_monai.io import split_suffix

    folder = run_dir / "validation_truth"
    folder.mkdir(parents=True, exist_ok=True)
    for case in splits["validation"]:
        source = Path(case["label"])
        link = folder / (case["name"] + split_suffix(source)[1])
        if not link.exists():
            link.symlink_to(source.resolve())
    return folder


def _prediction_figure(cases: list[dict], predictions: Path, path: Path, title: str) -> None:
    from medseg_monai.io import mask_filename
    from medseg_monai.reporting import CaseRow, save_case_figure

    rows = [
        CaseRow(case["name"], case["image"], case["label"], predictions / mask_filename(case["image"]))
        for case in cases
        if (predictions / mask_filename(case["image"])).exists()
    ]
    save_case_figure(rows, path, label_values=(1, 2), title=title)
