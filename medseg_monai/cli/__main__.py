"""``python -m medseg_monai.cli``: the ``medseg`` command (also under torchrun)."""

import sys

from medseg_monai.cli import main

sys.exit(main())
