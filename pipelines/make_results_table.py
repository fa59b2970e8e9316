"""Regenerate docs/results.md from the summary.json of recipe run folders.

    python pipelines/make_results_table.py runs/full --out docs/results.md

The summaries of full runs found are first copied into docs/results/ (replacing the earlier run of the
same recipe and network), and the page covers everything there: it regenerates without the run folders.

Wiring only: scanning and rendering live in `medseg_monai.recipes.results`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medseg_monai.recipes import write_results_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "roots", nargs="*", type=Path, default=[Path("runs")], help="folders searched for summary.json (default: runs)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument(
        "--archive",
        type=Path,
        default=Path("docs/results"),
        help="folder of published full-run summaries (default: docs/results)",
    )
    parser.add_argument("--no-archive", action="store_true", help="render only the runs under ROOTS; publish nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(f"wrote {write_results_table(args.roots, args.out, archive=None if args.no_archive else args.archive)}")


if __name__ == "__main__":
    main()
