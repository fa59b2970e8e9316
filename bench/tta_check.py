"""Test-time augmentation on or off: validation Dice and seconds per case of trained recipe runs, both ways.

    python bench/tta_check.py msd_hippocampus=runs/msd_hippocampus drive_retina=runs/drive_retina

Each ``RECIPE=FOLDER`` names a finished recipe run (``FOLDER/unet`` from ``medseg run RECIPE --out FOLDER``).
Its validation cases are predicted and scored again with ``infer.tta_flips`` false, then true (the recipe's
``--score-only``: same weights, same windows, same cases; the run's ``summary.json`` ends with the last
setting), alternating off and on for ``--rounds`` rounds; each setting's fastest round is kept. Results:
``docs/results/tta_check.json`` (per recipe: the headline Dice, the Dice per class and the seconds per case
from the prediction manifest, both ways), which docs/training.md quotes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULT = REPO / "docs" / "results" / "tta_check.json"


def score(recipe: str, folder: Path, network: str, tta: bool) -> dict:
    from medseg_monai.recipes import run_recipe

    summary = run_recipe(recipe, network, out=folder, score_only=True, overrides={"infer.tta_flips": tta})
    manifest = json.loads((folder / network / "predictions" / "predict_manifest.json").read_text())
    seconds = [case["seconds"] for case in manifest["cases"]]  # the network's cases, unrounded
    return {
        "headline_dice": summary["headline"]["value"],
        "dice": {name: stats["dice"]["mean"] for name, stats in summary["metrics"].items()},
        "cases": len(seconds),
        "seconds_per_case": sum(seconds) / len(seconds),
    }


def fastest(tta: bool, rounds: list[dict]) -> dict:
    """The round of ``tta`` with the least time (the Dice is the same in every round)."""
    mine = [r for r in rounds if r["tta"] == tta]
    best = min(mine, key=lambda r: r["result"]["seconds_per_case"])["result"]
    return {**best, "rounds_seconds_per_case": [r["result"]["seconds_per_case"] for r in mine]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RECIPE=FOLDER", help="a recipe and the --out of its run")
    parser.add_argument("--network", default="unet", help="the network of the runs (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds, alternating (default: %(default)s)")
    args = parser.parse_args(argv)
    results = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    for item in args.runs:
        recipe, _, folder = item.partition("=")
        folder = Path(folder)
        rounds = [
            {"tta": tta, "result": score(recipe, folder, args.network, tta)}
            for _ in range(args.rounds)
            for tta in (False, True)
        ]
        off, on = (fastest(tta, rounds) for tta in (False, True))
        results[recipe] = {
            "network": args.network,
            "tta_off": off,
            "tta_on": on,
            "dice_gain": on["headline_dice"] - off["headline_dice"],
            "time_ratio": on["seconds_per_case"] / off["seconds_per_case"],
        }
        print(f"{recipe}: Dice {off['headline_dice']:.4f} -> {on['headline_dice']:.4f} with TTA, "
              f"{results[recipe]['time_ratio']:.2f}x the prediction time")  # fmt: skip
    RESULT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
