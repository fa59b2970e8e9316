"""Benchmark: cases per minute of 1, 2 and 4 ``medseg predict --num-parts`` processes against one process.

    python bench/scale_out.py            # 40 hippocampus volumes
    python bench/scale_out.py --cases 20

Each row runs the whole folder (the small-case model and inputs of ``bench/small_cases.py``, TTA off)
as N processes of one thread each, ``--num-parts N --part-id i`` started together, and as one
process with N threads; cases per minute from the first start to the last exit, model loading
included. On a machine with fewer cores than processes the parts share them. Results:
``summary.json`` section ``scale``.
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
import small_cases  # noqa: E402


def run_parts(run: Path, folder: Path, parts: int, threads: int) -> float:
    """Seconds for ``parts`` processes of ``threads`` threads each to predict ``folder``."""
    output = common.WORK / f"scale_out_{parts}x{threads}"
    shutil.rmtree(output, ignore_errors=True)
    medseg = str(Path(sys.executable).with_name("medseg"))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                medseg,
                "-q",
                "predict",
                "--model",
                str(run),
                "--input",
                str(folder),
                "--output",
                str(output),
                "--no-tta",
                "--num-parts",
                str(parts),
                "--part-id",
                str(i),
            ],
            env=env,
            cwd=common.REPO,
            stdout=subprocess.DEVNULL,
        )
        for i in range(parts)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"medseg predict exited {codes}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--quick", action="store_true", help="20 cases")
    parser.add_argument("--threads", type=int, help="ignored: each row sets its own")
    args = parser.parse_args(argv)
    run = small_cases.model()
    cases = 20 if args.quick else args.cases
    folder = small_cases.inputs(cases)
    rows = {}
    for n in args.processes:
        common.log(f"scale: {n} part(s) x 1 thread, then 1 process x {n} threads ...")
        parts_s, single_s = run_parts(run, folder, n, 1), run_parts(run, folder, 1, n)
        rows[str(n)] = {
            "parts_cases_per_minute": round(cases / parts_s * 60, 1),
            "single_cases_per_minute": round(cases / single_s * 60, 1),
            "ratio": round(single_s / parts_s, 2),
        }
    common.update_summary(
        "scale",
        {f"parts_{n}_vs_threads_{n}": row["ratio"] for n, row in rows.items()},
        {"cases": cases, "cpu_count": os.cpu_count(), "rows": rows},
    )
    common.log(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
