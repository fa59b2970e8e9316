"""Benchmark: peak memory of `medseg predict` on a large CT, with and without `--save-probabilities`
and `--save-uncertainty`.

    python bench/probability_memory.py             # one 512 x 512 x 400 synthetic CT
    python bench/probability_memory.py --quick     # 512 x 512 x 150
    python bench/probability_memory.py --entropy   # also the entropy map (8 flips: 8 times the windows)

Each variant predicts the same case with the same weights (the spleen bundle's UNet, untrained: memory
does not depend on training) and windows in a fresh process, and reports its peak resident memory
(``VmHWM``) and time; the ratios are against the plain mask run. The maps are ``uint8`` (default) and
``float32`` probabilities, and the entropy (with flips, so that variant also runs 8 times the windows:
its time is not comparable, its memory is). Nothing else heavy should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
from export_speed import untrained_run  # noqa: E402

VARIANTS = {
    "mask": {},
    "probabilities_uint8": {"save_probabilities": True},
    "probabilities_float32": {"save_probabilities": True, "probabilities_dtype": "float32"},
    "entropy_with_flips": {"save_uncertainty": True, "tta": True},
}


def worker(args: argparse.Namespace) -> None:
    import torch

    from medseg_monai.batch.runner import run_batch
    from medseg_monai.config import BatchOptions
    from medseg_monai.inference import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(VARIANTS[args.variant])
    tta = options.pop("tta", False)
    predictor = Predictor.from_run(args.model, infer={"tta_flips": tta}, runtime={"device": "cpu"})
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        (result,) = run_batch(predictor, args.case, out, BatchOptions(progress=False, manifest=False, **options))
        seconds = time.perf_counter() - start
        if result.status != "written":
            raise SystemExit(f"{args.case}: {result.error}")
    Path(args.result).write_text(json.dumps({"seconds": seconds, "peak_rss_bytes": common.peak_rss_bytes()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--entropy", action="store_true", help="also measure --save-uncertainty (with 8 flips)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    depth = 150 if args.quick else 400
    case = next(common.ct_cases(common.WORK, [depth]).glob("*.nii.gz"))
    model = common.WORK / "probability_memory_model"
    if not (model / "checkpoints" / "best.pt").exists():
        untrained_run(model, roi=96, batch=4)
    rows = {}
    for name in (v for v in VARIANTS if args.entropy or v != "entropy_with_flips"):
        common.log(f"{name} on {case.name} ...")
        rows[name] = common.run_worker(
            "probability_memory", ["--variant", name, "--model", str(model), "--case", str(case)], threads=args.threads
        )
    base = rows["mask"]
    for row in rows.values():
        row["rss_ratio"] = round(row["peak_rss_bytes"] / base["peak_rss_bytes"], 3)
        row["time_ratio"] = round(row["seconds"] / base["seconds"], 3)
        row["peak_rss_gib"] = round(row["peak_rss_bytes"] / 2**30, 3)
    common.update_summary(
        "probability_maps",
        {f"{name}.rss_ratio": row["rss_ratio"] for name, row in rows.items()},
        {"shape": [512, 512, depth], "threads": args.threads, "variants": rows, "machine": common.machine()},
    )
    print(f"{'variant':<24} {'s/case':>8} {'peak GiB':>9} {'x mask RSS':>10} {'x mask time':>11}")
    for name, row in rows.items():
        print(
            f"{name:<24} {row['seconds']:>8.1f} {row['peak_rss_gib']:>9.2f} "
            f"{row['rss_ratio']:>10.2f} {row['time_ratio']:>11.2f}"
        )


if __name__ == "__main__":
    main()
