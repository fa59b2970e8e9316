"""What the benchmarks share: synthetic CT cases, the benchmark model, peak memory, label Dice, the summary file.

Every benchmark compares two ways of doing the same work on the same inputs and weights in one
invocation and reports the ratio; absolute seconds depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SUMMARY = RESULTS / "summary.json"
WORK = REPO / "runs" / "bench"

#: the spleen_ct_segmentation bundle's preprocessing and window settings
RECIPE_SPACING = (1.5, 1.5, 2.0)
RECIPE_HU = (-57.0, 164.0)
RECIPE_WINDOW = {"roi_size": (96, 96, 96), "sw_batch_size": 4, "overlap": 0.5, "mode": "constant"}
#: a clinical field of view: the body spans about 60-65 % x 50-60 % of it, air around
CT_BODY_SCALE = 0.7
#: training of the benchmark model: 15 steps an epoch, about 12 s each on 2 cores
EPOCHS = 24


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Fastest of ``repeats`` calls in seconds, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def ct_cases(work: Path, depths: Sequence[int], size: int = 512, seed: int = 0) -> Path:
    """A folder of synthetic CT volumes ``size x size x depth`` (one per depth), cached in ``work``."""
    from medseg_monai.data.synthetic_3d import make_synthetic_3d

    folder = work / f"ct_{size}_{'-'.join(map(str, depths))}_s{seed}"
    if len(list(folder.glob("*.nii.gz"))) == len(depths):
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, depth in enumerate(depths):
        log(f"writing synthetic CT {size}x{size}x{depth} ...")
        make_synthetic_3d(
            tmp / str(i), n_cases=1, shape=(size, size, depth), modality="ct", seed=seed + i, body_scale=CT_BODY_SCALE
        )
        (tmp / str(i) / "imagesTr" / "case_000.nii.gz").rename(tmp / f"ct_{i:02d}_{depth}.nii.gz")
        shutil.rmtree(tmp / str(i))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def spleen_model(work: Path) -> Path:
    """The spleen bundle's network (residual UNet 16-32-64-128-256, 2 residual units, batch norm), trained
    for a few minutes on small synthetic CT with the recipe's spacing and HU window (cached)."""
    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
    from medseg_monai.training.trainer import train

    run = work / "spleen_model"
    if (run / "checkpoints" / "best.pt").exists():
        return run
    log(f"training the benchmark model (the spleen bundle's network) in {run} ...")
    data = ct_train_data(work)
    config = RunConfig(
        data=DataConfig(
            data_dir=str(data),
            spatial_dims=3,
            patch_size=(64, 64, 64),
            intensity="ct",
            ct_window=RECIPE_HU,
            target_spacing=RECIPE_SPACING,
            samples_per_image=2,
            val_fraction=0.2,
            label_values=(0, 1, 2),
            label_names=("background", "organ", "lesion"),
        ),
        model=ModelConfig(name="unet"),
        train=TrainConfig(
            epochs=EPOCHS, iterations_per_epoch=15, batch_size=2, learning_rate=3e-3, val_interval=EPOCHS
        ),
        infer=InferConfig(roi_size=RECIPE_WINDOW["roi_size"], sw_batch_size=4, overlap=0.25),
    )
    shutil.rmtree(run, ignore_errors=True)
    train(config, run)
    return run


def ct_train_data(work: Path) -> Path:
    """Five synthetic CT cases of 192 x 192 x 96 for training (cached)."""
    from medseg_monai.data.synthetic_3d import make_synthetic_3d

    data = work / "spleen_train_data"
    if not (data / "labelsTr").is_dir() or len(list((data / "labelsTr").glob("*.nii.gz"))) < 5:
        make_synthetic_3d(data, n_cases=5, shape=(192, 192, 96), modality="ct", seed=1, body_scale=CT_BODY_SCALE)
    return data


def label_dice(reference: Any, other: Any) -> float:
    """Mean Dice over the foreground labels present in either mask (1.0 when both are empty)."""
    import numpy as np

    a, b = np.asarray(reference), np.asarray(other)
    scores = []
    for value in sorted((set(np.unique(a).tolist()) | set(np.unique(b).tolist())) - {0}):
        x, y = a == value, b == value
        scores.append(2.0 * np.logical_and(x, y).sum() / max(int(x.sum() + y.sum()), 1))
    return float(np.mean(scores)) if scores else 1.0


def run_worker(module: str, args: Sequence[str], threads: int | None = None, env: dict[str, str] | None = None) -> dict:
    """Run ``python bench/MODULE.py --worker ARGS`` in a fresh process (``env`` added to its environment);
    return its JSON result."""
    result = WORK / f".{module}_{os.getpid()}_{time.monotonic_ns()}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(REPO / "bench" / f"{module}.py"), "--worker", *args, "--result", str(result)]
    if threads:
        cmd += ["--threads", str(threads)]
    before = cpu_times()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, **(env or {})})
    after = cpu_times()
    try:
        values = json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)
    if before and after:  # time the hypervisor gave to other machines: a noisy neighbour skews every figure of the run
        total = sum(after) - sum(before)
        values["cpu_steal_fraction"] = (
            round((after[7] - before[7]) / total, 4) if total > 0 and len(after) > 7 else None
        )
    return values


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (``/proc/stat``: user, nice, system, idle, iowait, irq, softirq, steal, ...)."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None


def update_summary(section: str, values: dict[str, Any], details: dict[str, Any] | None = None) -> None:
    """Merge ``values`` into ``summary.json`` under ``section`` (and ``details`` under ``details.section``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    summary[section] = {**summary.get(section, {}), **repo_relative(values)}
    if details is not None:
        summary.setdefault("details", {})[section] = repo_relative(details)
    summary["machine"] = machine()
    tmp = SUMMARY.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    tmp.replace(SUMMARY)


def repo_relative(value: Any) -> Any:
    """``value`` with every string (dict keys included) under the repository rewritten relative to it.

    A committed summary must not hold this machine's absolute paths; paths outside the repository stay as they are.
    """
    if isinstance(value, dict):
        return {repo_relative(key): repo_relative(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [repo_relative(item) for item in value]
    if isinstance(value, str) and value.startswith(str(REPO) + os.sep):
        return value[len(str(REPO)) + 1 :]
    return value


def machine() -> dict[str, Any]:
    import platform

    import torch

    flags = ""
    if Path("/proc/cpuinfo").is_file():
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
