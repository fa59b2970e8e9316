"""Where a cold start's import time goes: ``import monai`` and a one-file ``medseg predict``, module by module.

    python bench/import_cost.py

Each command runs in a fresh ``python -X importtime``, three times, and the fastest run is kept. The
cumulative import time of each top-level module (what its first ``import`` cost, its own imports included)
is attributed to its package: ``torch``, ``monai`` itself, each MONAI subpackage that ``import monai`` loads,
and what ``medseg predict`` imports on top (our package, readers and writers). ``small_cases.py`` measures the
wall time of the whole cold start; this breaks the import part of it down.
Results: ``docs/results/import_cost.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
import small_cases  # noqa: E402

RESULT = common.REPO / "docs" / "results" / "import_cost.json"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_times(cmd: list[str]) -> list[tuple[int, str, float]]:
    """``(depth, module, cumulative seconds)`` for every import of ``cmd`` run under ``-X importtime``."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd], cwd=common.REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {done.stderr[-2000:]}")
    rows = []
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match:
            rows.append((len(match[3]) // 2, match[4], int(match[2]) / 1e6))
    return rows


def by_package(rows: list[tuple[int, str, float]], split: tuple[str, ...] = ()) -> dict[str, float]:
    """Seconds per top-level package of the outermost imports; packages in ``split`` per direct subpackage."""
    totals: dict[str, float] = {}
    for depth, module, seconds in rows:
        top = module.split(".")[0]
        if top in split and depth == 1:
            key = ".".join(module.split(".")[:2])  # a subpackage may first be imported by one of its modules
        elif depth == 0:
            key = top
        else:
            continue
        totals[key] = totals.get(key, 0.0) + seconds
    return {key: round(value, 3) for key, value in sorted(totals.items(), key=lambda kv: -kv[1]) if value >= 0.01}


def fastest(cmd: list[str], repeats: int = 3) -> list[tuple[int, str, float]]:
    runs = [import_times(cmd) for _ in range(repeats)]
    return min(runs, key=lambda rows: sum(s for depth, _, s in rows if depth == 0))


def main() -> dict:
    run = small_cases.model()
    image = sorted(small_cases.inputs(10).glob("*.nii.gz"))[0]
    monai = fastest(["-c", "import torch; import monai"])
    predict = fastest(small_cases.predict_command(run, image, ["-m", "medseg_monai.cli"]))
    monai_parts = by_package([(d, m, s) for d, m, s in monai if m.split(".")[0] == "monai"], split=("monai",))
    result = {
        "import_torch_seconds": by_package(monai).get("torch", 0.0),
        "import_monai_after_torch_seconds": by_package(monai).get("monai", 0.0),
        "monai_subpackages": {k: v for k, v in monai_parts.items() if k != "monai"},
        "predict_imports": by_package(predict),
        "predict_import_seconds": round(sum(s for depth, _, s in predict if depth == 0), 3),
        "machine": common.machine(),
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
