"""Soak: a long 2D batch keeps resident memory and per-case time flat.

    python bench/soak_2d.py                 # 1,000 images -> bench/results/soak_2d.json and soak_2d.png
    python bench/soak_2d.py --images 300    # shorter

A tiny 2D UNet (8-16-32) trained for one short epoch on synthetic 64 x 64 images, then ``run_batch`` in
this process over ``--images`` small synthetic PNGs (distinct noise on each), with the manifest and
read-ahead as ``medseg predict`` uses them. After every case it samples the resident set size (psutil
when installed, else ``VmRSS`` of ``/proc/self/status``) and the seconds since the previous case.
Reported: ``rss_growth_fraction`` (RSS after the last case over RSS after the 50th, minus 1),
``time_ratio`` (mean seconds of the last 100 cases over cases 50-150) and the load average around the
run, which these figures depend on. Not part of ``summary.json``: it is a measurement of one process,
not a comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

logger = logging.getLogger("bench.soak_2d")

RESULT = common.RESULTS / "soak_2d.json"
PLOT = common.RESULTS / "soak_2d.png"
#: the first cases warm caches and allocators; growth is measured from this one
WARM = 50


def rss_bytes() -> int:
    """Resident set size of this process now."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise OSError("/proc/self/status: no VmRSS line")


def tiny_model(work: Path) -> Path:
    """A one-epoch tiny 2D UNet run folder (cached in ``work``)."""
    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
    from medseg_monai.data.synthetic_2d import make_synthetic_2d
    from medseg_monai.training.trainer import train

    run = work / "model"
    if (run / "checkpoints" / "best.pt").is_file():
        return run
    data = work / "train"
    make_synthetic_2d(data, n_cases=8, shape=(64, 64), seed=3)
    config = RunConfig(
        data=DataConfig(
            data_dir=str(data), spatial_dims=2, patch_size=(32, 32), samples_per_image=1, val_fraction=0.25
        ),
        model=ModelConfig(name="unet", options={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}),
        train=TrainConfig(epochs=1, batch_size=2, learning_rate=1e-2),
        infer=InferConfig(overlap=0.25, sw_batch_size=2),
    )
    train(config, run)
    return run


def synthetic_pngs(folder: Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """``count`` distinct gray PNGs: a bright disc at a random place on noise (cached)."""
    import numpy as np
    from PIL import Image

    if folder.is_dir() and len(list(folder.glob("*.png"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        cy, cx, r = rng.integers(12, size - 12, 2).tolist() + [int(rng.integers(5, 12))]
        image = rng.normal(60, 15, (size, size)) + 120 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"img_{i:04d}.png")
    return folder


def run_soak(images: int, work: Path, plot: Path | None = PLOT, threads: int = 1) -> dict[str, Any]:
    """Predict ``images`` synthetic PNGs in this process, sampling RSS and seconds after every case."""
    import torch

    from medseg_monai.batch import run_batch
    from medseg_monai.config import BatchOptions
    from medseg_monai.inference import Predictor

    if images < 200:
        raise ValueError(f"--images must be >= 200 (the time ratio uses cases 50-150 and the last 100), got {images}")
    torch.set_num_threads(threads)
    work = Path(work)
    predictor = Predictor.from_run(tiny_model(work))
    folder = synthetic_pngs(work / f"pngs_{images}", images)
    rss, seconds = [], []
    save_mask, last = predictor.save_mask, [time.perf_counter()]

    def sampled_save(*args: Any, **kwargs: Any) -> Path:  # one call per case: sample after the previous case
        now = time.perf_counter()
        if rss:
            seconds.append(now - last[0])
        last[0] = now
        rss.append(rss_bytes())
        return save_mask(*args, **kwargs)

    predictor.save_mask = sampled_save  # type: ignore[method-assign]
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = run_batch(predictor, folder, work / "masks", BatchOptions(overwrite=True, progress=False))
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if sum(r.status == "written" for r in results) != images:
        raise RuntimeError(f"{work / 'masks'}: {len(results)} results, not {images} written masks")
    rss = rss[1:] + [rss_bytes()]  # RSS after each case (the last sampled at the end)
    grow = rss[-1] / rss[WARM - 1] - 1.0
    ratio = (sum(seconds[-100:]) / len(seconds[-100:])) / (sum(seconds[WARM:150]) / len(seconds[WARM:150]))
    figures = {
        "images": images,
        "image_size": [64, 64],
        "threads": threads,
        "wall_seconds": round(wall, 2),
        "rss_mb_case_50": round(rss[WARM - 1] / 2**20, 2),
        "rss_mb_last": round(rss[-1] / 2**20, 2),
        "rss_mb_max": round(max(rss) / 2**20, 2),
        "rss_growth_fraction": round(grow, 4),
        "mean_case_seconds_50_150": round(sum(seconds[WARM:150]) / len(seconds[WARM:150]), 5),
        "mean_case_seconds_last_100": round(sum(seconds[-100:]) / len(seconds[-100:]), 5),
        "time_ratio": round(ratio, 4),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(),
        "rss_source": "psutil" if _has_psutil() else "/proc/self/status VmRSS",
    }
    if plot is not None:
        _plot(rss, seconds, figures, plot)
    return figures


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def _plot(rss: list[int], seconds: list[float], figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg_monai.utils import atomic_path

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(range(1, len(rss) + 1), [r / 2**20 for r in rss], lw=1)
    top.axvline(WARM, color="gray", ls=":")
    top.set_ylabel("RSS (MiB)")
    top.set_title(
        f"soak: {figures['images']} 2D cases, RSS growth {100 * figures['rss_growth_fraction']:.2f} % "
        f"(case {WARM} -> last), time ratio {figures['time_ratio']:.3f}"
    )
    bottom.plot(range(2, len(seconds) + 2), [s * 1000 for s in seconds], lw=0.6)
    bottom.set_ylabel("ms per case")
    bottom.set_xlabel("case index")
    bottom.set_ylim(0, max(1.0, sorted(seconds)[int(0.995 * (len(seconds) - 1))] * 1000 * 1.3))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=common.WORK / "soak_2d")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("medseg_monai").setLevel(logging.WARNING)
    figures = run_soak(args.images, args.work, PLOT, args.threads)
    from medseg_monai.utils import atomic_write_text

    common.RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULT, json.dumps(figures, indent=1) + "\n")
    logger.info("%s", json.dumps(figures, indent=1))
    logger.info("wrote %s and %s", RESULT, PLOT)
    return figures


if __name__ == "__main__":
    main()
