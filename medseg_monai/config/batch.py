"""How a batch of predictions runs: settings of ``medseg predict`` that are not saved with a run."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from medseg_monai.config.fields import documented, setting
from medseg_monai.errors import ConfigError

__all__ = ["BatchOptions", "ProbabilityDtype"]

ProbabilityDtype = Literal["uint8", "float32"]


@documented
@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How a batch of predictions runs (:func:`medseg_monai.batch.run_batch`); not saved with a run."""

    overwrite: bool = setting(
        False, help="Predict cases again whose complete mask already exists (else they are skipped)."
    )
    progress: bool = setting(True, help="Show a progress bar (`medseg predict`: unless `-q`).", cli=False)
    num_parts: int | None = setting(
        None,
        help="Split the sorted cases into this many parts (with `part_id`); `null`: "
        "torchrun's `WORLD_SIZE`, else one part.",
    )
    part_id: int | None = setting(
        None, help="Which part this process runs, `0 .. num_parts - 1`; `null`: torchrun's `RANK`."
    )
    manifest: bool = setting(
        True, help="Keep `predict_manifest.json` in the output folder up to date after every case."
    )
    report: str | None = setting(
        None,
        help="Where to write the HTML QA page once all parts are done (`--report` alone: "
        "predict_report.html in the output folder); `null` writes none.",
        nargs="?",
        metavar="HTML",
    )
    many_components: int = setting(
        10, help="Flag a case when a class has more connected components than this.", metavar="N"
    )
    read_ahead: bool = setting(
        True,
        help="Read and preprocess the next case in a background thread while the network runs on "
        "this one (one more image in memory).",
    )
    series: str | None = setting(
        None,
        help="Of DICOM folders holding several series, segment only the series with this "
        "SeriesInstanceUID (`null`: every series, one output each).",
        metavar="UID",
    )
    statistics: bool = setting(
        False,
        help="Per case and label: voxels, volume, image intensity inside the mask, bounding box, "
        "centroid, components and a border flag, in `predict_statistics.csv` and the manifest.",
    )
    save_probabilities: bool = setting(
        False,
        help="Write each class's softmax beside the mask, in the source's grid and "
        "geometry (`<name>_probabilities.<suffix>`; 2D sources: a multi-page TIF).",
    )
    probabilities_dtype: ProbabilityDtype = setting(
        "uint8", help="Stored probability type: `uint8` (softmax x 255, rounded) or `float32`."
    )
    save_uncertainty: bool = setting(
        False,
        help="Write the per-voxel predictive entropy (nats) of the flip-averaged softmax "
        "(`<name>_entropy.<suffix>`); needs `--tta-flips`.",
    )
    high_entropy: float = setting(
        0.25,
        help="Flag a case in the report when the mean entropy over its foreground voxels "
        "exceeds this (nats; `save_uncertainty` only).",
        metavar="NATS",
    )

    def __post_init__(self) -> None:
        if self.report is not None:
            if isinstance(self.report, bool) or not isinstance(self.report, (str, os.PathLike)):
                raise ConfigError(f"report must be the path of the HTML page (or None), got {self.report!r}")
            object.__setattr__(self, "report", os.fspath(self.report))
        if self.probabilities_dtype not in ("uint8", "float32"):
            raise ConfigError(f"probabilities_dtype must be 'uint8' or 'float32', got {self.probabilities_dtype!r}")
        if not self.high_entropy >= 0:
            raise ConfigError(f"high_entropy must be >= 0, got {self.high_entropy}")
        if self.many_components < 0:
            raise ConfigError(f"many_components must be >= 0, got {self.many_components}")
