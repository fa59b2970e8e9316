"""Recipe: DRIVE retinal vessels (2D RGB): F1/accuracy inside the field-of-view masks (fov/).

    python pipelines/drive_retina.py --time-budget-min 30 --out runs/drive_retina
    medseg run pipelines/drive_retina.py --smoke          # a couple of minutes, wiring check only

Options: --network, --out, --time-budget-min, --smoke, --data-root, --seed, --epochs, --set (see --help).
Wiring only: the recipe and its defaults live in `medseg_monai.recipes`.
"""

from __future__ import annotations

import sys

from medseg_monai.recipes import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("drive_retina", prog="python pipelines/drive_retina.py"))
