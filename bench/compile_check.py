"""The compile default from the real thing: two runs of a recipe, ``train.compile=on`` and ``off``, compared.

    medseg run msd_hippocampus --time-budget-min 30 --out runs/compile_on --set train.compile=on
    medseg run msd_hippocampus --time-budget-min 30 --out runs/compile_off --set train.compile=off
    python bench/compile_check.py runs/compile_on/unet runs/compile_off/unet

Run the two one after the other on a quiet machine (never at once). For each run folder: epochs reached,
the first epoch's seconds (it holds the compilation), the median seconds of the epochs after it (training
steps only, validation left out), the final validation Dice, and the headline Dice of the recipe's scoring.
Results: ``docs/results/compile_check.json``, which docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

RESULT = Path(__file__).resolve().parents[1] / "docs" / "results" / "compile_check.json"


def facts(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train_s = [float(r["epoch_time_s"]) - float(r["val_time_s"] or 0.0) for r in rows]
    last_validated = next(r for r in reversed(rows) if r["val_mean_dice"])
    return {
        "compile": config["train"]["compile"],
        "recipe": summary["recipe"],
        "time_budget_min": summary["time_budget_min"],
        "epochs_run": len(rows),
        "first_epoch_seconds": train_s[0],
        "median_epoch_seconds": statistics.median(train_s[1:]),
        "train_seconds": summary["train_seconds"],
        "final_val_mean_dice": float(last_validated["val_mean_dice"]),
        "headline_dice": summary["headline"]["value"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs=2, type=Path, metavar="RUN", help="the compile=on and compile=off run folders")
    args = parser.parse_args(argv)
    runs = {f"compile_{item['compile']}": item for item in map(facts, args.runs)}
    if set(runs) != {"compile_on", "compile_off"}:
        parser.error(f"expected one run with train.compile=on and one with off, got {sorted(runs)}")
    on, off = runs["compile_on"], runs["compile_off"]
    result = {
        **runs,
        "epoch_speedup": off["median_epoch_seconds"] / on["median_epoch_seconds"],
        "epochs_ratio": on["epochs_run"] / off["epochs_run"],
        "dice_difference": on["headline_dice"] - off["headline_dice"],
        "winner": "on" if on["headline_dice"] > off["headline_dice"] else "off",
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
