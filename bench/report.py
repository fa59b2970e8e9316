"""Write the table of ``bench/results/summary.json`` into docs/performance.md (between its bench markers).

    python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DOC = common.REPO / "docs" / "performance.md"
START, END = "<!-- bench-summary:start -->", "<!-- bench-summary:end -->"
TARGETS = {
    "predict.speedup_matched": ("predict at the recipe's windows, speed vs the recipe", ">= 3"),
    "predict.speedup_default": ("predict at our defaults, speed vs the recipe", ">= 5"),
    "predict.rss_ratio": ("peak RSS vs the recipe", "<= 0.3"),
    "predict.dice_vs_recipe_matched": ("label Dice vs the recipe's fp32 masks, matched windows", ">= 0.99"),
    "predict.dice_vs_recipe_default": ("label Dice vs the recipe's fp32 masks, our defaults", "-"),
    "predict.network_fraction": ("network share of our time, matched windows", ">= 0.85"),
    "network.bf16_speedup": ("network alone: bf16 autocast vs fp32", "-"),
    "network.bf16_channels_last_speedup": ("network alone: bf16 + channels-last vs fp32", "-"),
    "network.fp32_channels_last_speedup": ("network alone: fp32 channels-last vs fp32", "-"),
    "network.bf16_argmax_agreement": ("network alone: bf16 argmax agreement with fp32", "-"),
    "train.epoch_speedup": ("training epoch vs the plain MONAI loop", ">= 2"),
    "train.data_wait_fraction": ("training: share of step time waiting for data", "<= 0.05"),
    "train.baseline_data_wait_fraction": ("plain MONAI loop: share waiting for data", "-"),
    "small.case_seconds": ("hippocampus-sized case, steady, TTA off (s)", "<= 0.3"),
    "small.case_speedup": ("hippocampus-sized case vs a MONAI loop", "-"),
    "small.startup_seconds": ("cold start of `medseg predict` on one file (s)", "<= 5"),
    "small.startup_speedup": ("cold start vs a plain MONAI script", "-"),
    "small.import_seconds": ("of which importing the CLI (s)", "-"),
}


def table(summary: dict) -> str:
    lines = ["| key | what | measured | target |", "|---|---|---|---|"]
    for key, (what, target) in TARGETS.items():
        section, name = key.split(".")
        value = summary.get(section, {}).get(name)
        if value is not None:
            lines.append(f"| `{key}` | {what} | {value} | {target} |")
    for key, ratio in sorted(summary.get("scale", {}).items()):
        n = key.split("_")[1]
        lines.append(f"| `scale.{key}` | {n} parts x 1 thread vs 1 process x {n} threads, cases/min ratio | {ratio} | - |")
    run, machine = summary.get("run", {}), summary.get("machine", {})
    lines.append("")
    lines.append(f"Measured with `python bench/predict_vs_monai.py{' --quick' if run.get('quick') else ''}` "
                 f"({run.get('seconds', '?')} s) on {machine.get('cpu_count', '?')} CPU cores, torch {machine.get('torch', '?')}, "
                 f"AVX512-BF16 {'yes' if machine.get('avx512_bf16') else 'no'}; every figure is a ratio of two runs "
                 "in that one invocation, except the seconds.")
    return "\n".join(lines)


def main() -> int:
    summary = json.loads(common.SUMMARY.read_text())
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC}: the markers {START} / {END} are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{table(summary)}\n{END}{tail}")
    print(f"wrote the benchmark table into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
