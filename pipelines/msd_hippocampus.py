"""Recipe: MSD Task04 hippocampus (3D MRI, labels 0/1/2): UNet 3D, percentile intensity per image.

    python pipelines/msd_hippocampus.py --time-budget-min 30 --out runs/msd_hippocampus
    medseg run pipelines/msd_hippocampus.py --smoke          # a couple of minutes, wiring check only

Options: --network, --out, --time-budget-min, --smoke, --data-root, --seed, --epochs, --set (see --help).
Wiring only: the recipe and its defaults live in `medseg_monai.recipes`.
"""

from __future__ import annotations

import sys

from medseg_monai.recipes import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("msd_hippocampus", prog="python pipelines/msd_hippocampus.py"))
