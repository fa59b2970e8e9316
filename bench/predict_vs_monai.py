"""Benchmark driver: ``medseg`` against plain MONAI on the same inputs and weights, in one invocation.

    python bench/predict_vs_monai.py --quick     # every section, small: under 10 minutes on 2 cores
    python bench/predict_vs_monai.py             # every section at full size (make bench)
    python bench/predict_vs_monai.py --sections predict --model runs/my_ct_model

Sections (each writes its keys into ``bench/results/summary.json``; ``bench/report.py`` turns that
into the table of docs/performance.md):

- ``predict`` (here): synthetic CT volumes of 512 x 512 x (150..400), body-shaped with air around it,
  run by the spleen_ct_segmentation bundle's inference recipe (LoadImaged -> Orientationd(RAS) ->
  Spacingd(1.5 x 1.5 x 2) -> ScaleIntensityRanged(-57..164 HU) -> SlidingWindowInferer(96^3, 4
  windows a batch, overlap 0.5, constant) -> softmax -> Invertd -> argmax -> SaveImaged, float32) and
  by ``medseg`` with the same weights at the recipe's windows (``matched``) and at its own defaults;
  each pipeline in a fresh process, cases one after another. Reported: seconds per case, peak RSS,
  the label Dice of each mask against the recipe's fp32 mask, and the share of ``medseg``'s time
  spent in the network. The full run adds the levers one by one at the recipe's windows.
- ``network``: ``bench/network_speed.py``; ``precision``: ``bench/precision_check.py`` on the benchmark
  model and on the recipes' run folders found in ``runs/``; ``train``: ``bench/train_vs_monai.py``;
  ``small``: ``bench/small_cases.py``; ``scale`` (full run only): ``bench/scale_out.py``.

The benchmark model is the spleen bundle's network (residual UNet 16-32-64-128-256, 2 residual
units, batch norm) trained for about five minutes on small synthetic CT (cached in ``runs/bench``);
``--model RUN`` uses your own 3D CT run folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

RECIPE = "monai_recipe"
#: medseg pipelines: inference settings changed from the run's own
MEDSEG = {
    "medseg_matched": {"overlap": 0.5, "blend_mode": "constant", "sw_batch_size": 4, "roi_size": (96, 96, 96)},
    "medseg_default": {},
}
#: the levers one at a time at the recipe's windows (full run)
LEVERS = {
    "matched_fp32_all_windows": {
        **MEDSEG["medseg_matched"],
        "precision": "fp32",
        "memory_format": "contiguous",
        "foreground_crop": "none",
    },
    "matched_bf16_all_windows": {**MEDSEG["medseg_matched"], "precision": "bf16", "foreground_crop": "none"},
    "matched_fp32_body_windows": {**MEDSEG["medseg_matched"], "precision": "fp32", "memory_format": "contiguous"},
    "matched_labels_inversion": {**MEDSEG["medseg_matched"], "inversion": "labels"},
}
QUICK_DEPTHS, FULL_DEPTHS = (150,), (150, 250, 400)


# ---------------------------------------------------------------------------------------------- workers
def run_monai_recipe(model: Path, inputs: Path, output: Path) -> dict:
    import torch
    from monai.data import Dataset
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import (
        Activationsd,
        AsDiscreted,
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Invertd,
        LoadImaged,
        Orientationd,
        SaveImaged,
        ScaleIntensityRanged,
        Spacingd,
    )

    from medseg_monai.config import RunConfig
    from medseg_monai.models.checkpoint import load_checkpoint
    from medseg_monai.networks import build_network

    config = RunConfig.load(model / "config.json")
    network = build_network(config, load_pretrained=False)
    network.load_state_dict(load_checkpoint(model / "checkpoints" / "best.pt")["network"])
    network.eval()
    low, high = config.data.ct_window
    preprocessing = Compose(
        [
            LoadImaged(keys="image"),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys="image", pixdim=config.data.target_spacing, mode="bilinear"),
            ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
            EnsureTyped(keys="image"),
        ]
    )
    inferer = SlidingWindowInferer(**common.RECIPE_WINDOW)
    postprocessing = Compose(
        [
            Activationsd(keys="pred", softmax=True),
            Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False, to_tensor=True),
            AsDiscreted(keys="pred", argmax=True),
            SaveImaged(
                keys="pred",
                output_dir=str(output),
                output_ext=".nii.gz",
                output_dtype="float32",
                output_postfix="trans",
                separate_folder=True,
                print_log=False,
            ),
        ]
    )
    files = sorted(str(p) for p in inputs.glob("*.nii.gz"))
    dataset = Dataset([{"image": f} for f in files], transform=preprocessing)
    seconds, network_s = [], 0.0
    start = time.perf_counter()
    for item in dataset:
        t0 = time.perf_counter()
        with torch.inference_mode():
            item["pred"] = inferer(item["image"][None], network)[0]
        network_s += time.perf_counter() - t0
        postprocessing(item)
        del item
        seconds.append(time.perf_counter() - t0)
    stem = lambda f: Path(f).name.replace(".nii.gz", "")  # noqa: E731
    outputs = {Path(f).name: str(output / stem(f) / f"{stem(f)}_trans.nii.gz") for f in files}
    return {
        "batch_seconds": time.perf_counter() - start,
        "case_seconds": seconds,
        "outputs": outputs,
        "network_seconds": network_s,
    }


def run_medseg(model: Path, inputs: Path, output: Path, settings: dict) -> dict:
    """Predict ``inputs`` with ``settings``: changes to the run's ``infer`` and ``runtime`` fields, by field name."""
    from medseg_monai.batch import run_batch
    from medseg_monai.config import BatchOptions
    from medseg_monai.config.runtime import RUNTIME_FIELDS
    from medseg_monai.inference import Predictor

    runtime = {k: v for k, v in settings.items() if k in RUNTIME_FIELDS}
    infer = {k: v for k, v in settings.items() if k not in RUNTIME_FIELDS}
    predictor = Predictor.from_run(model, infer=infer or None, runtime=runtime or None)
    start = time.perf_counter()
    results = run_batch(predictor, inputs, output, BatchOptions(overwrite=True, progress=False))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"medseg failed on {len(failed)} case(s): {failed[:3]}")
    facts = predictor.describe()
    keys = (
        "roi_size",
        "overlap",
        "sw_batch_size",
        "blend_mode",
        "precision",
        "memory_format",
        "foreground_crop",
        "inversion",
    )
    return {
        "batch_seconds": time.perf_counter() - start,
        "case_seconds": [r.seconds for r in results],
        "outputs": {r.input.name: str(r.output) for r in results},
        "network_seconds": sum(r.stage_seconds.get("network", 0.0) for r in results),  # the network's share
        "stage_seconds": {r.input.name: r.stage_seconds for r in results},
        "infer": {k: v for k, v in {**facts["infer"], **facts["runtime"]}.items() if k in keys},
    }


def worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output)
    if args.pipeline == RECIPE:
        result = run_monai_recipe(Path(args.model), Path(args.inputs), output)
    else:
        result = run_medseg(Path(args.model), Path(args.inputs), output, json.loads(args.infer))
    result["peak_rss_bytes"] = common.peak_rss_bytes()
    result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------- sections
def stages_per_case(stage_seconds: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean seconds per case of each stage of ``medseg_monai.batch.STAGES`` (``read`` overlaps the network)."""
    cases = list(stage_seconds.values())
    stages = dict.fromkeys(stage for case in cases for stage in case)
    return {stage: round(sum(case.get(stage, 0.0) for case in cases) / len(cases), 3) for stage in stages}


def predict_section(model: Path, depths: tuple[int, ...], threads: int, levers: bool) -> dict:
    import nibabel as nib
    import numpy as np

    inputs = common.ct_cases(common.WORK, depths)
    for path in inputs.iterdir():  # the same page-cache state for every pipeline
        path.read_bytes()
    pipelines = {RECIPE: None, **MEDSEG, **(LEVERS if levers else {})}
    results: dict[str, dict] = {}
    for name, infer in pipelines.items():
        common.log(f"predict: {name} on {len(depths)} case(s) ...")
        args = [
            "--pipeline",
            name,
            "--model",
            str(model),
            "--inputs",
            str(inputs),
            "--output",
            str(common.WORK / "out" / name),
            "--infer",
            json.dumps(infer or {}),
        ]
        results[name] = common.run_worker("predict_vs_monai", args, threads)

    def mask(path: str) -> np.ndarray:
        return np.asarray(nib.load(path).dataobj).astype(np.int64)

    recipe = results[RECIPE]
    rows = {}
    for name, result in results.items():
        per_case = result["batch_seconds"] / len(depths)
        row = {
            "seconds_per_case": round(per_case, 2),
            "peak_rss_gib": round(result["peak_rss_bytes"] / 2**30, 2),
            "speedup": round(recipe["batch_seconds"] / result["batch_seconds"], 2),
            "rss_ratio": round(result["peak_rss_bytes"] / recipe["peak_rss_bytes"], 3),
            "network_fraction": round(result["network_seconds"] / result["batch_seconds"], 3),
        }
        if name != RECIPE:
            scores = [
                common.label_dice(mask(recipe["outputs"][case]), mask(path)) for case, path in result["outputs"].items()
            ]
            row["dice_vs_recipe"] = round(float(np.mean(scores)), 4)
            row["infer"] = result["infer"]
            row["stage_seconds_per_case"] = stages_per_case(result["stage_seconds"])
        rows[name] = row
    matched, default = rows["medseg_matched"], rows["medseg_default"]
    summary = {
        "speedup_matched": matched["speedup"],
        "speedup_default": default["speedup"],
        "rss_ratio": max(matched["rss_ratio"], default["rss_ratio"]),
        "dice_vs_recipe_matched": matched["dice_vs_recipe"],
        "dice_vs_recipe_default": default["dice_vs_recipe"],
        "network_fraction": matched["network_fraction"],
    }
    details = {"depths": list(depths), "size": 512, "threads": threads, "model": str(model), "pipelines": rows}
    common.update_summary("predict", summary, details)
    return summary


def run_section_script(script: str, quick: bool, threads: int, model: Path | None = None) -> None:
    cmd = [sys.executable, str(common.REPO / "bench" / script), "--threads", str(threads)]
    if quick:
        cmd.append("--quick")
    if model is not None:
        cmd += ["--model", str(model)]
    common.log(f"{script} ...")
    subprocess.run(cmd, check=True, cwd=common.REPO)


SECTIONS = ("predict", "network", "precision", "train", "small", "scale")


def trained_runs() -> list[Path]:
    """Run folders of the recipes trained here (``runs/<recipe>/<network>``), for the precision check."""
    return sorted(p.parent for p in (common.REPO / "runs").glob("*/*/splits.json") if p.parent.parent.name != "bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, every summary key, under 10 minutes")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="default: all (scale only without --quick)")
    parser.add_argument("--model", type=Path, help="a 3D CT run folder (default: the benchmark model)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every pipeline (default 2)")
    parser.add_argument("--depths", type=int, nargs="+", help="slices of each 512x512 CT case")
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--inputs", "--output", "--result", "--infer"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    sections = args.sections or [s for s in SECTIONS if s != "scale" or not args.quick]
    start = time.perf_counter()
    model = (args.model or common.spleen_model(common.WORK)).resolve()
    if "predict" in sections:
        depths = tuple(args.depths or (QUICK_DEPTHS if args.quick else FULL_DEPTHS))
        print(json.dumps(predict_section(model, depths, args.threads, levers=not args.quick), indent=2))
    if "network" in sections:
        run_section_script("network_speed.py", args.quick, args.threads, args.model)
    if "precision" in sections:
        cmd = [sys.executable, str(common.REPO / "bench" / "precision_check.py"), "--threads", str(args.threads)]
        subprocess.run(cmd + (["--quick"] if args.quick else []), check=True, cwd=common.REPO)  # the benchmark CT model
        if trained_runs():
            subprocess.run(
                cmd + [str(p) for p in trained_runs()] + (["--quick"] if args.quick else []),
                check=True,
                cwd=common.REPO,
            )
    for section, script in (("train", "train_vs_monai.py"), ("small", "small_cases.py"), ("scale", "scale_out.py")):
        if section in sections:
            run_section_script(script, args.quick, args.threads)
    common.update_summary(
        "run", {"quick": args.quick, "sections": sections, "seconds": round(time.perf_counter() - start, 1)}
    )
    common.log(f"summary: {common.SUMMARY} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
