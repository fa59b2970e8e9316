"""How images that can be read but are odd are handled where they enter the package.

One :class:`InputChecks` travels from the CLI (``medseg predict --strict --max-voxels N``), the Python API
(``Predictor.from_run(..., checks=InputChecks(strict=True))``) and the bundles to the image reader,
which applies it in :func:`medseg_monai.io.validation.check_image`. It is not saved with a run: it says
how this batch treats its inputs, not how the model was trained.
"""

from __future__ import annotations

import dataclasses
import math

from medseg_monai.config.fields import documented, setting
from medseg_monai.errors import ConfigError

__all__ = ["InputChecks"]


@documented
@dataclasses.dataclass(frozen=True)
class InputChecks:
    """Checks of every image read for training or prediction (non-finite voxels, 4D images, memory guard)."""

    strict: bool = setting(
        False, help="Refuse images with non-finite voxels (NaN, inf) instead of replacing them with a warning."
    )
    nan_value: float | None = setting(
        None,
        help="What NaN voxels become; `null`: the image's smallest finite value "
        "(+/-inf become the largest/smallest finite value).",
        metavar="VALUE",
    )
    max_voxels: int = setting(
        1_000_000_000,
        help="Refuse an image whose header claims more voxels (times channels) "
        "than this, before reading it: a memory guard.",
        metavar="N",
    )
    volume_index: int | None = setting(
        None,
        help="Which volume of a 4D image to segment (0-based); `null`: a 4D image "
        "whose fourth axis is not the model's input channels is refused.",
        metavar="INDEX",
    )

    def __post_init__(self) -> None:
        if isinstance(self.max_voxels, bool) or not isinstance(self.max_voxels, int) or self.max_voxels < 1:
            raise ConfigError(f"max_voxels must be a positive integer, got {self.max_voxels!r}")
        if self.volume_index is not None and (
            isinstance(self.volume_index, bool) or not isinstance(self.volume_index, int) or self.volume_index < 0
        ):
            raise ConfigError(f"volume_index must be a non-negative integer or None, got {self.volume_index!r}")
        if self.nan_value is not None and not math.isfinite(float(self.nan_value)):
            raise ConfigError(f"nan_value must be a finite number or None, got {self.nan_value!r}")
