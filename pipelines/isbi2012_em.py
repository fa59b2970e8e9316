"""Recipe: ISBI 2012 EM serial sections (2D gray, 512x512): cell interior (255) vs membrane (0).

    python pipelines/isbi2012_em.py --time-budget-min 30 --out runs/isbi2012_em
    medseg run pipelines/isbi2012_em.py --smoke          # a couple of minutes, wiring check only

Options: --network, --out, --time-budget-min, --smoke, --data-root, --seed, --epochs, --set (see --help).
Wiring only: the recipe and its defaults live in `medseg_monai.recipes`.
"""

from __future__ import annotations

import sys

from medseg_monai.recipes import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("isbi2012_em", prog="python pipelines/isbi2012_em.py"))
