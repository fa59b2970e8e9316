"""Recipe: the synthetic 2D + 3D demo (what `make demo` runs), as a script.

    python pipelines/synthetic_demo.py --out runs/demo [--quick]

Wiring only: every step lives in `medseg_monai.demo`.
"""

from __future__ import annotations

import argparse
import json
import logging

from medseg_monai.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ignite").setLevel(logging.WARNING)
    print(json.dumps(run_demo(args.out, quick=args.quick, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
