"""One case of a batch: predict one input and write its mask (and what else was asked for) into a folder.

:func:`predict_case` returns a :class:`CaseResult` and never raises for a bad case: an input problem is
reported by name, a bug of ours as an internal error with its traceback in the output folder.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.batch.case_outputs import CaseOutputs, case_complete, case_statistics, discard_case, write_maps
from medseg_monai.data.channels import Source, as_source, source_label
from medseg_monai.errors import error_message, is_expected, write_traceback
from medseg_monai.inference import Predictor, PreparedImage
from medseg_monai.io import file_sha256, mask_statistics, read_geometry, remove_stale_temporaries

__all__ = ["STAGES", "CaseResult", "failures", "predict_case"]

logger = logging.getLogger(__name__)

#: the stages of a written case in :attr:`CaseResult.stage_seconds`: reading and preparing the image (in the
#: read-ahead thread when it ran ahead), waiting for it, the network over the windows, the rest of the
#: stitching (blending, inversion to the source grid, post-processing), writing the mask and maps, and the
#: mask's statistics and checksum; whole-image stitching has ``predict`` in place of the middle three
STAGES = ("read", "read_wait", "network", "stitching", "predict", "write", "statistics")


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """Outcome of one input: ``status`` is ``written``, ``skipped`` (a complete output existed) or ``failed``.

    ``warnings`` are what the input checks said about the image (NaN voxels replaced, a constant image).
    ``internal`` marks a failure that is a bug in this package rather than a problem of the input.
    ``labels`` maps each foreground mask value (as a string) to ``{"name", "count", "components"}``
    plus ``"volume_ml"`` for volumes; ``shape``/``spacing`` are the mask's (the source's) grid.
    ``extras`` holds what :class:`~medseg_monai.batch.case_outputs.CaseOutputs` asked for: ``probabilities``
    and ``entropy`` (files, scale, mean foreground entropy) and ``statistics`` (rows per label).
    ``stage_seconds`` splits a written case's time (:data:`STAGES`); ``read`` may have overlapped the previous case.
    """

    input: Path
    output: Path | None
    status: str
    error: str | None = None
    seconds: float = 0.0
    shape: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    labels: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    sha256: str | None = None
    internal: bool = False
    warnings: tuple[str, ...] = ()
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def failures(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The failed cases of a batch, in order."""
    return [r for r in results if not r.ok]


def predict_case(
    predictor: Predictor,
    source: str | Path,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    prepared: Callable[[], PreparedImage] | None = None,
    outputs: CaseOutputs | None = None,
) -> CaseResult:
    """Predict one input and write its mask into ``output_dir``; errors are returned, not raised.

    A complete output (readable, with the source's shape) is kept unless ``overwrite``; leftovers
    of an interrupted write of this output are removed first. ``prepared`` returns the image already
    read by :meth:`Predictor.prepare` (a read-ahead future's ``result``); its errors count as this case's.
    ``outputs`` asks for probability/entropy maps and statistics besides the mask (a case lacking a map
    asked for is predicted again).
    """
    source = as_source(source)  # a file, or a case of several channel files
    start = time.perf_counter()
    output = None
    try:
        output = predictor.mask_path(source, output_dir)
        remove_stale_temporaries(output)
        outputs = outputs or CaseOutputs()
        if not overwrite and case_complete(predictor, source, output, outputs):
            return CaseResult(source, output, "skipped")
        return _written_case(predictor, source, output, Path(output_dir), outputs, prepared, start)
    except Exception as err:  # one bad case must not stop a batch; the reason is reported
        message = error_message(err)
        if str(source) not in message and source_label(source) not in message:
            message = f"{source_label(source)}: {message}"
        internal = not is_expected(err)
        if internal:  # a bug, not bad input: say so, and keep the traceback
            log = _traceback_log(err, output_dir, source)
            message = f"{source}: internal error ({type(err).__name__}: {error_message(err)}); traceback in {log}"
        logger.error("failed: %s", message)
        logger.debug("traceback for %s", source, exc_info=True)
        return CaseResult(
            source, output, "failed", error=message, seconds=time.perf_counter() - start, internal=internal
        )


def _written_case(
    predictor: Predictor,
    source: Source,
    output: Path,
    output_dir: Path,
    outputs: CaseOutputs,
    prepared: Callable[[], PreparedImage] | None,
    start: float,
) -> CaseResult:
    """Predict ``source``, write its mask (and maps) to ``output`` and return its record; errors are raised."""
    warnings: tuple[str, ...] = ()
    maps = None
    clock = _StageClock()
    if predictor.stitching.prepares_ahead:
        image = prepared() if prepared is not None else predictor.prepare(source)
        clock.stop("read_wait" if prepared is not None else "read")  # read here, not ahead: no waiting
        clock.seconds.update(read=image.seconds, read_wait=clock.seconds.get("read_wait", 0.0))
        network_before = predictor.window_forward.seconds
        warnings, maps = image.warnings, predictor.predict_maps(image, outputs.maps)
        mask = maps.mask
        clock.stop("stitching")  # the network's forward passes ran inside it
        clock.move("stitching", "network", predictor.window_forward.seconds - network_before)
    else:
        mask = predictor.predict_image(source)
        clock.stop("predict")
    output = predictor.save_mask(mask, source, output)
    try:
        extras = write_maps(predictor, maps, source, output_dir, outputs) if maps is not None else {}
    except Exception:  # no mask without the maps asked for: the next run redoes the case whole
        discard_case(predictor, source, output, outputs)
        raise
    clock.stop("write")
    spacing = read_geometry(output).spacing
    stats = mask_statistics(mask, spacing, predictor.label_names(source), predictor.output_values(source)[0])
    if outputs.statistics:
        extras["statistics"] = case_statistics(predictor, source, mask, stats)
    sha256 = file_sha256(output)
    clock.stop("statistics")
    return CaseResult(
        source,
        output,
        "written",
        seconds=time.perf_counter() - start,
        shape=tuple(int(s) for s in mask.shape),
        spacing=tuple(float(s) for s in spacing),
        labels=stats,
        sha256=sha256,
        warnings=warnings,
        extras=extras,
        stage_seconds={stage: round(seconds, 4) for stage, seconds in clock.seconds.items()},
    )


class _StageClock:
    """Seconds per stage of one case: each :meth:`stop` ends the stage that ran since the previous one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def stop(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def move(self, stage: str, to: str, seconds: float) -> None:
        """Count ``seconds`` of ``stage`` as ``to`` instead (work timed by its own clock inside a stage)."""
        self.seconds[stage] -= seconds
        self.seconds[to] = self.seconds.get(to, 0.0) + seconds


def _traceback_log(err: BaseException, output_dir: str | Path, source: Path) -> str:
    try:
        return str(write_traceback(err, output_dir, f"medseg predict {source}"))
    except OSError as log_err:  # the output folder itself is the problem
        return f"(not written: {log_err})"
