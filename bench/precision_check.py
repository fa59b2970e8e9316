"""Quality guard of bfloat16 inference: label Dice of bf16 masks against fp32 masks of the same model.

    python bench/precision_check.py runs/msd_hippocampus/unet runs/chaos_mr_liver2d/unet
    python bench/precision_check.py              # the benchmark CT model on the benchmark's CT cases

For a run folder, the cases are its validation cases (``splits.json``); both precisions use the run's
own inference settings otherwise. ``precision=auto`` may pick bf16 only while every model checked
here keeps a label Dice >= 0.99 against fp32. Results: ``summary.json`` section ``precision``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def check(run: Path, images: list[Path]) -> dict:
    import numpy as np

    from medseg_monai.inference import Predictor

    fp32 = Predictor.from_run(run, runtime={"precision": "fp32"})
    bf16 = fp32.with_runtime(precision="bf16")
    scores = [common.label_dice(fp32.predict_image(path), bf16.predict_image(path)) for path in images]
    return {
        "cases": len(scores),
        "mean_dice": round(float(np.mean(scores)), 5),
        "min_dice": round(float(np.min(scores)), 5),
    }


def validation_images(run: Path) -> list[Path]:
    splits = json.loads((run / "splits.json").read_text())
    return [Path(item["image"]) for item in splits["validation"]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="at most 10 cases per run")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    targets = {str(run): validation_images(run) for run in args.runs}
    if not targets:
        targets = {"benchmark CT model": sorted(common.ct_cases(common.WORK, (150,)).glob("*.nii.gz"))}
        model = common.spleen_model(common.WORK)
    rows = {}
    for name, images in targets.items():
        images = images[:10] if args.quick else images
        common.log(f"precision: {name}, {len(images)} case(s) in fp32 and bf16 ...")
        rows[name] = check(model if name == "benchmark CT model" else Path(name), images)
        common.log(json.dumps(rows[name]))
    previous = (
        json.loads(common.SUMMARY.read_text()).get("details", {}).get("precision", {}).get("runs", {})
        if common.SUMMARY.is_file()
        else {}
    )
    rows = {**previous, **rows}
    common.update_summary(
        "precision", {"bf16_min_dice_vs_fp32": min(r["min_dice"] for r in rows.values())}, {"runs": rows}
    )
    return rows


if __name__ == "__main__":
    main()
