"""Recipe: CHAOS MR T1 liver (2D, 256x256): train on aug_*, validate on val_* and full_* only.

    python pipelines/chaos_mr_liver2d.py --time-budget-min 30 --out runs/chaos_mr_liver2d
    medseg run pipelines/chaos_mr_liver2d.py --smoke          # a couple of minutes, wiring check only

Options: --network, --out, --time-budget-min, --smoke, --data-root, --seed, --epochs, --set (see --help).
Wiring only: the recipe and its defaults live in `medseg_monai.recipes`.
"""

from __future__ import annotations

import sys

from medseg_monai.recipes import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("chaos_mr_liver2d", prog="python pipelines/chaos_mr_liver2d.py"))
