"""Benchmark: small-case latency, ``medseg predict`` against a plain MONAI loop, same weights and windows.

    python bench/small_cases.py            # 30 hippocampus volumes
    python bench/small_cases.py --quick    # 10

Hippocampus-sized MR crops (``msd_hippocampus`` from ``$MEDSEG_DATA_DIR``, default ``../shared/data``;
synthetic 36 x 50 x 36 volumes when absent) and the hippocampus recipe's 3D UNet (16-32-64-128),
trained for a few steps (the weights do not change the cost). Steady state: seconds per case over a
folder with TTA off, ``run_batch`` against a MONAI loop (LoadImaged -> Orientationd -> Spacingd ->
NormalizeIntensityd -> SlidingWindowInferer -> Invertd -> SaveImaged) with the same windows, the first
case left out of both. Cold start: the wall time of ``medseg predict`` on one file from a fresh
``python``, against a plain script doing the same with MONAI; plus the import, model-load and
first-window shares of it. Results: ``summary.json`` section ``small``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

DATA_ENV = "MEDSEG_DATA_DIR"


def inputs(count: int) -> Path:
    root = Path(os.environ.get(DATA_ENV, common.REPO.parent / "shared" / "data")) / "msd_hippocampus" / "imagesTr"
    folder = common.WORK / f"hippo_{count}"
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = sorted(root.glob("*.nii.gz"))[:count] if root.is_dir() else []
    if len(files) == count:
        for path in files:
            (folder / path.name).symlink_to(path.resolve())
        return folder
    from medseg_monai.data.synthetic_3d import make_synthetic_3d

    make_synthetic_3d(folder / "synth", n_cases=count, shape=(36, 50, 36), spacing=(1.0, 1.0, 1.0), seed=3)
    for path in (folder / "synth" / "imagesTr").glob("*.nii.gz"):
        path.rename(folder / path.name)
    shutil.rmtree(folder / "synth")
    return folder


def model() -> Path:
    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
    from medseg_monai.data.synthetic_3d import make_synthetic_3d
    from medseg_monai.recipes.catalog import UNET_3D
    from medseg_monai.training.trainer import train

    run = common.WORK / "hippo_model"
    if (run / "checkpoints" / "best.pt").is_file():
        return run
    data = common.WORK / "hippo_train"
    make_synthetic_3d(data, n_cases=4, shape=(36, 50, 36), spacing=(1.0, 1.0, 1.0), seed=5)
    config = RunConfig(
        data=DataConfig(
            data_dir=str(data),
            spatial_dims=3,
            patch_size=(32, 48, 32),
            target_spacing=(1.0, 1.0, 1.0),
            intensity="zscore",
            val_fraction=0.25,
        ),
        model=ModelConfig(name="unet", options=UNET_3D),
        train=TrainConfig(epochs=1, iterations_per_epoch=4, batch_size=2),
        infer=InferConfig(overlap=0.5),
    )
    train(config, run)
    return run


def steady_medseg(run: Path, folder: Path, output: Path) -> dict:
    from medseg_monai.batch import run_batch
    from medseg_monai.config import BatchOptions
    from medseg_monai.inference import Predictor

    predictor = Predictor.from_run(run, infer={"tta_flips": False})
    results = run_batch(predictor, folder, output, BatchOptions(overwrite=True, progress=False))
    seconds = [r.seconds for r in results if r.ok]
    return {"case_seconds": sum(seconds[1:]) / max(len(seconds) - 1, 1), "cases": len(seconds)}


def steady_monai(run: Path, folder: Path, output: Path) -> dict:
    import torch
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        Invertd,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        SaveImaged,
        Spacingd,
    )

    from medseg_monai.config import RunConfig
    from medseg_monai.models.checkpoint import load_checkpoint
    from medseg_monai.networks import build_network

    config = RunConfig.load(run / "config.json")
    network = build_network(config, load_pretrained=False)
    network.load_state_dict(load_checkpoint(run / "checkpoints" / "best.pt")["network"])
    network.eval()
    pre = Compose(
        [
            LoadImaged(keys="image"),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys="image", pixdim=config.data.target_spacing),
            NormalizeIntensityd(keys="image", nonzero=True),
        ]
    )
    inferer = SlidingWindowInferer(
        roi_size=config.roi_size,
        sw_batch_size=config.infer.sw_batch_size,
        overlap=config.infer.overlap,
        mode=config.infer.blend_mode,
    )
    post = Compose(
        [
            Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True),
            SaveImaged(
                keys="pred", output_dir=str(output), output_dtype="uint8", separate_folder=False, print_log=False
            ),
        ]
    )
    seconds = []
    for path in sorted(folder.glob("*.nii.gz")):
        t0 = time.perf_counter()
        item = pre({"image": str(path)})
        with torch.inference_mode():
            item["pred"] = inferer(item["image"][None], network)[0].argmax(0, keepdim=True).float()
        post(item)
        seconds.append(time.perf_counter() - t0)
    return {"case_seconds": sum(seconds[1:]) / max(len(seconds) - 1, 1), "cases": len(seconds)}


PLAIN_COLD_START = """
import sys, time, torch
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import UNet
from monai.transforms import (
    Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd, Orientationd, SaveImaged, Spacingd, Invertd,
)
torch.set_num_threads(int(sys.argv[4]))
ckpt = torch.load(sys.argv[1], weights_only=True)
net = UNet(3, 1, 3, (16, 32, 64, 128), (2, 2, 2), num_res_units=2, norm="batch", act="PRELU")
net.load_state_dict(ckpt["network"]); net.eval()
pre = Compose([LoadImaged(keys="image"), EnsureChannelFirstd(keys="image"),
               Orientationd(keys="image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
               Spacingd(keys="image", pixdim=(1.0, 1.0, 1.0)), NormalizeIntensityd(keys="image", nonzero=True)])
item = pre({"image": sys.argv[2]})
with torch.inference_mode():
    scores = SlidingWindowInferer((32, 48, 32), 4, 0.5)(item["image"][None], net)
    item["pred"] = scores[0].argmax(0, keepdim=True).float()
Compose([Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True),
         SaveImaged(keys="pred", output_dir=sys.argv[3], output_dtype="uint8", separate_folder=False,
                    print_log=False)])(item)
"""


def predict_command(run: Path, image: Path, launcher: list[str]) -> list[str]:
    """The one-file ``medseg predict`` of the cold start, after ``launcher`` (the ``medseg`` script or
    ``python -m medseg_monai.cli``)."""
    output = str(common.WORK / "cold_out")
    return [
        *launcher,
        "-q",
        "predict",
        "--model",
        str(run),
        "--input",
        str(image),
        "--output",
        output,
        "--overwrite",
        "--no-tta",
    ]


def cold_start(run: Path, image: Path, threads: int, repeats: int) -> dict:
    medseg = predict_command(run, image, [str(Path(sys.executable).with_name("medseg"))])
    plain = [
        sys.executable,
        "-c",
        PLAIN_COLD_START,
        str(run / "checkpoints" / "best.pt"),
        str(image),
        str(common.WORK / "cold_plain"),
        str(threads),
    ]
    imports = [sys.executable, "-c", "import medseg_monai.cli"]
    import_monai = [sys.executable, "-c", "import monai"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    times = {}
    for name, cmd in (("medseg", medseg), ("plain", plain), ("import_cli", imports), ("import_monai", import_monai)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=common.REPO, env=env, stdout=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - t0)
        times[name] = round(best, 3)
    return times


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder, out = Path(args.inputs), common.WORK / f"small_out_{args.pipeline}"
    run = common.WORK / "hippo_model"
    result = steady_medseg(run, folder, out) if args.pipeline == "medseg" else steady_monai(run, folder, out)
    Path(args.result).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", type=int)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    run = model()
    folder = inputs(args.cases or (10 if args.quick else 30))
    steady = {}
    for name in ("monai_loop", "medseg"):
        common.log(f"small cases: {name} ...")
        steady[name] = common.run_worker("small_cases", ["--pipeline", name, "--inputs", str(folder)], args.threads)
    cold = cold_start(run, sorted(folder.glob("*.nii.gz"))[0], args.threads, 2 if args.quick else 3)
    summary = {
        "case_seconds": round(steady["medseg"]["case_seconds"], 3),
        "case_speedup": round(steady["monai_loop"]["case_seconds"] / steady["medseg"]["case_seconds"], 2),
        "startup_seconds": cold["medseg"],
        "startup_speedup": round(cold["plain"] / cold["medseg"], 2),
        "import_seconds": cold["import_cli"],
        "import_monai_seconds": cold["import_monai"],
    }
    common.update_summary(
        "small",
        summary,
        {"cases": len(list(folder.glob("*.nii.gz"))), "threads": args.threads, "steady": steady, "cold_start": cold},
    )
    common.log(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
