"""Benchmark: ``medseg predict`` against the MONAI spleen-bundle inference recipe, same weights, same run.

    python bench/predict_vs_monai.py --cases 20                      # 20 synthetic 512x512x400 CT volumes
    python bench/predict_vs_monai.py --cases 3 --shape 256 256 200   # a quick look

Pipelines, each in a fresh Python process over the whole folder with the model loaded once (cases
run one after another, no data-loader workers):

- ``monai_recipe``: the spleen_ct_segmentation bundle's ``inference.json`` as a loop: LoadImaged ->
  EnsureChannelFirstd -> Orientationd(RAS) -> Spacingd -> ScaleIntensityRanged -> EnsureTyped ->
  SlidingWindowInferer(roi 96^3, sw_batch_size 4, overlap 0.5) -> Activationsd(softmax) ->
  Invertd(bilinear) -> AsDiscreted(argmax) -> SaveImaged (float32 NIfTI, as the bundle writes);
- ``medseg``: ``run_batch`` with the run's own inference settings (manifest included);
- ``medseg_matched``: ``run_batch`` with the recipe's window settings (overlap 0.5, constant
  blending), so the difference is the pipeline, not the number of windows.

Reported per pipeline: cases/minute over the batch loop (model loading excluded), seconds per case,
peak resident memory (``VmHWM`` of the process), and ratios against ``monai_recipe``; plus the
Dice agreement of the masks with the recipe's. Results go to ``WORK/results.json``.

The data (``make_synthetic_3d(..., modality="ct")``) and a small UNet trained for a few minutes on
small synthetic CT volumes are cached in ``--work``; ``--model RUN`` uses your own run folder instead
(a 3D CT model with ``target_spacing``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ("monai_recipe", "medseg", "medseg_matched")
RECIPE_WINDOW = {"roi_size": (96, 96, 96), "sw_batch_size": 4, "overlap": 0.5, "mode": "constant"}


# ---------------------------------------------------------------------------------------------- setup
def make_data(work: Path, cases: int, shape: tuple[int, ...]) -> Path:
    from medseg_monai.data.synthetic import make_synthetic_3d

    data = work / f"data_{'x'.join(map(str, shape))}"
    images = data / "imagesTr"
    if len(list(images.glob("*.nii.gz"))) < cases:
        print(f"writing {cases} synthetic CT volumes {shape} to {data} ...", flush=True)
        make_synthetic_3d(data, n_cases=cases, shape=shape, modality="ct", seed=0)
    inputs = work / f"inputs_{cases}_{'x'.join(map(str, shape))}"
    inputs.mkdir(parents=True, exist_ok=True)
    for path in sorted(images.glob("*.nii.gz"))[:cases]:
        link = inputs / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return inputs


def make_model(work: Path) -> Path:
    """A small 3D UNet trained briefly on small synthetic CT volumes (cached)."""
    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
    from medseg_monai.data.synthetic import make_synthetic_3d
    from medseg_monai.engines.train import train

    run = work / "model"
    if (run / "checkpoints" / "best.pt").exists():
        return run
    print("training a small UNet for the benchmark (cached in %s) ..." % run, flush=True)
    make_synthetic_3d(work / "train_data", n_cases=6, shape=(128, 128, 80), modality="ct", seed=1)
    config = RunConfig(
        data=DataConfig(
            data_dir=str(work / "train_data"), spatial_dims=3, patch_size=(64, 64, 64), intensity="ct",
            ct_window=(-57.0, 164.0), target_spacing=(1.5, 1.5, 2.0), samples_per_image=2, val_fraction=0.34,
            label_names=("background", "organ", "lesion"), label_values=(0, 1, 2),
        ),
        model=ModelConfig(name="unet", options={"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1}),
        train=TrainConfig(epochs=4, iterations_per_epoch=20, batch_size=2, learning_rate=3e-3, val_interval=4),
        infer=InferConfig(roi_size=(96, 96, 96), sw_batch_size=4, overlap=0.25),
    )
    train(config, run)
    return run


# ---------------------------------------------------------------------------------------------- workers
def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_monai_recipe(model: Path, inputs: Path, output: Path) -> dict:
    import torch
    from monai.data import Dataset
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import (
        Activationsd, AsDiscreted, Compose, EnsureChannelFirstd, EnsureTyped, Invertd, LoadImaged,
        Orientationd, SaveImaged, ScaleIntensityRanged, Spacingd,
    )

    from medseg_monai.config import RunConfig
    from medseg_monai.engines.checkpoint import load_checkpoint
    from medseg_monai.networks import build_network

    config = RunConfig.load(model / "config.json")
    network = build_network(config, load_pretrained=False)
    network.load_state_dict(load_checkpoint(model / "checkpoints" / "best.pt")["network"])
    network.eval()
    low, high = config.data.ct_window
    preprocessing = Compose([
        LoadImaged(keys="image"),
        EnsureChannelFirstd(keys="image"),
        Orientationd(keys="image", axcodes="RAS"),
        Spacingd(keys="image", pixdim=config.data.target_spacing, mode="bilinear"),
        ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys="image"),
    ])
    inferer = SlidingWindowInferer(**RECIPE_WINDOW)
    postprocessing = Compose([
        Activationsd(keys="pred", softmax=True),
        Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", argmax=True),
        SaveImaged(keys="pred", output_dir=str(output), output_ext=".nii.gz", output_dtype="float32",
                   output_postfix="trans", separate_folder=True, print_log=False),
    ])
    files = sorted(str(p) for p in inputs.glob("*.nii.gz"))
    dataset = Dataset([{"image": f} for f in files], transform=preprocessing)
    seconds = []
    start = time.perf_counter()
    for item in dataset:
        t0 = time.perf_counter()
        with torch.inference_mode():
            item["pred"] = inferer(item["image"][None], network)[0]
        postprocessing(item)
        del item
        seconds.append(time.perf_counter() - t0)
    outputs = {Path(f).name: str(output / Path(f).name.replace(".nii.gz", "") / Path(f).name.replace(".nii.gz", "_trans.nii.gz")) for f in files}
    return {"batch_seconds": time.perf_counter() - start, "case_seconds": seconds, "outputs": outputs}


def run_medseg(model: Path, inputs: Path, output: Path, matched: bool) -> dict:
    from medseg_monai.config import BatchOptions
    from medseg_monai.engines import Predictor, run_batch

    infer = None
    if matched:
        infer = {"roi_size": RECIPE_WINDOW["roi_size"], "sw_batch_size": RECIPE_WINDOW["sw_batch_size"],
                 "overlap": RECIPE_WINDOW["overlap"], "blend_mode": RECIPE_WINDOW["mode"]}
    predictor = Predictor.from_run(model, infer=infer)
    start = time.perf_counter()
    results = run_batch(predictor, inputs, output, BatchOptions(overwrite=True, progress=False))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"medseg failed on {len(failed)} case(s): {failed[:3]}")
    return {
        "batch_seconds": time.perf_counter() - start,
        "case_seconds": [r.seconds for r in results],
        "outputs": {r.input.name: str(r.output) for r in results},
        "infer": {k: v for k, v in predictor.describe()["infer"].items() if k in ("roi_size", "overlap", "sw_batch_size", "blend_mode")},
    }


def worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output)
    if args.pipeline == "monai_recipe":
        result = run_monai_recipe(Path(args.model), Path(args.inputs), output)
    else:
        result = run_medseg(Path(args.model), Path(args.inputs), output, matched=args.pipeline == "medseg_matched")
    result["peak_rss_bytes"] = _peak_rss_bytes()
    result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------- driver
def agreement(reference: str, other: str) -> float:
    """Mean Dice over the foreground labels present in either mask."""
    import numpy as np

    from medseg_monai.io import load_image

    a, b = np.asarray(load_image(reference)).astype(np.int64), np.asarray(load_image(other)).astype(np.int64)
    scores = []
    for value in sorted(set(np.unique(a)) | set(np.unique(b)) - {0}):
        x, y = a == value, b == value
        scores.append(2.0 * np.logical_and(x, y).sum() / max(x.sum() + y.sum(), 1))
    return float(np.mean(scores)) if scores else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 400))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--model", type=Path, help="run folder of a 3D CT model (default: train a small one)")
    parser.add_argument("--threads", type=int, help="torch threads per pipeline (default: torch's)")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument("--worker", dest="pipeline", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pipeline:
        worker(args)
        return 0

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    inputs = make_data(work, args.cases, tuple(args.shape))
    model = (args.model or make_model(work)).resolve()
    for path in inputs.iterdir():  # same page-cache state for every pipeline
        Path(os.path.realpath(path)).read_bytes()
    results: dict[str, dict] = {}
    for name in args.pipelines:
        output = work / "out" / name
        result_file = work / f"{name}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--model", str(model),
               "--inputs", str(inputs), "--output", str(output), "--result", str(result_file)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"running {name} on {args.cases} case(s) ...", flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
        result = json.loads(result_file.read_text())
        result["cases_per_minute"] = args.cases / (result["batch_seconds"] / 60.0)
        results[name] = result

    rows = []
    reference = results.get("monai_recipe")
    for name, result in results.items():
        row = {
            "pipeline": name,
            "cases_per_minute": round(result["cases_per_minute"], 3),
            "seconds_per_case": round(result["batch_seconds"] / args.cases, 1),
            "peak_rss_gib": round(result["peak_rss_bytes"] / 2**30, 2),
            "threads": result["threads"],
        }
        if reference is not None:
            row["speed_vs_recipe"] = round(result["cases_per_minute"] / reference["cases_per_minute"], 2)
            row["memory_vs_recipe"] = round(result["peak_rss_bytes"] / reference["peak_rss_bytes"], 2)
            if name != "monai_recipe":
                scores = [agreement(reference["outputs"][case], path) for case, path in result["outputs"].items()]
                row["dice_vs_recipe"] = round(sum(scores) / len(scores), 4)
        rows.append(row)
    summary = {"cases": args.cases, "shape": list(args.shape), "model": str(model), "cpu_count": os.cpu_count(),
               "recipe_window": RECIPE_WINDOW, "medseg_infer": results.get("medseg", {}).get("infer"), "rows": rows}
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    keys = ["pipeline", "cases_per_minute", "seconds_per_case", "peak_rss_gib", "speed_vs_recipe", "memory_vs_recipe", "dice_vs_recipe"]
    print("\n" + " | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "-")) for k in keys))
    print(f"\nresults: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
