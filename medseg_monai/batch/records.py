"""The manifest's record of a case, and the facts of a kept (skipped) case completed from its earlier record
or, when that does not match the file, from the files themselves."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.batch.case_outputs import CaseOutputs, case_statistics, map_entries
from medseg_monai.batch.cases import CaseResult
from medseg_monai.batch.manifest import case_flags, now
from medseg_monai.config import BatchOptions
from medseg_monai.data.channels import ChannelCase
from medseg_monai.inference import Predictor
from medseg_monai.io import file_sha256, load_image, mask_statistics, read_geometry

__all__ = ["case_record", "completed_skipped"]

logger = logging.getLogger(__name__)


def _uncertainty_flags(extras: Mapping[str, Any], high_entropy: float) -> list[str]:
    mean = (extras.get("entropy") or {}).get("mean_foreground")
    return ["high_uncertainty"] if mean is not None and mean > high_entropy else []


def case_record(
    index: int, result: CaseResult, many_components: int, high_entropy: float = BatchOptions.high_entropy
) -> dict[str, Any]:
    output = result.output if result.output is not None and result.status != "failed" else None
    stat = output.stat() if output is not None and output.exists() else None
    return {
        "index": index,
        "input": str(Path(result.input).resolve()),  # channel 0 of a case of several files
        **(
            {"channels": [str(p.resolve()) for p in result.input.channels]}
            if isinstance(result.input, ChannelCase)
            else {}
        ),
        "output": str(output.resolve()) if output is not None else None,
        "status": result.status,
        "error": result.error,
        "seconds": round(float(result.seconds), 3),
        **({"stage_seconds": result.stage_seconds} if result.stage_seconds else {}),
        "shape": list(result.shape) if result.shape else None,
        "spacing": [round(s, 6) for s in result.spacing] if result.spacing else None,
        "labels": result.labels,
        "flags": (
            case_flags(result.labels, many_components)
            + ["input_warning"] * bool(result.warnings)
            + _uncertainty_flags(result.extras, high_entropy)
            if result.status != "failed"
            else ["failed"] + ["internal_error"] * result.internal
        ),
        "warnings": list(result.warnings),
        **{key: result.extras[key] for key in ("probabilities", "entropy", "statistics") if key in result.extras},
        "sha256": result.sha256,
        "size_bytes": stat.st_size if stat else None,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "finished": now(),
    }


def _skipped_facts(predictor: Predictor, result: CaseResult, previous: Mapping[str, Any] | None) -> CaseResult:
    """Fill a skipped case's statistics from its earlier record when the file is unchanged, else from the mask."""
    output = Path(result.output)
    stat = output.stat()
    if (
        previous
        and previous.get("sha256")
        and previous.get("size_bytes") == stat.st_size
        and previous.get("mtime_ns") == stat.st_mtime_ns
    ):
        return dataclasses.replace(
            result,
            shape=tuple(previous.get("shape") or ()),
            spacing=tuple(previous.get("spacing") or ()),
            labels=previous.get("labels") or {},
            sha256=previous["sha256"],
            seconds=previous.get("seconds") or 0.0,
            warnings=tuple(previous.get("warnings") or ()),
            extras={key: previous[key] for key in ("probabilities", "entropy", "statistics") if key in previous},
        )
    mask = np.asarray(load_image(output, role="mask"))
    geometry = read_geometry(output)
    labels = mask_statistics(
        mask, geometry.spacing, predictor.label_names(result.input), predictor.output_values(result.input)[0]
    )
    return dataclasses.replace(
        result, shape=tuple(geometry.shape), spacing=tuple(geometry.spacing), labels=labels, sha256=file_sha256(output)
    )


def _skipped_extras(predictor: Predictor, result: CaseResult, outputs: CaseOutputs) -> CaseResult:
    """Statistics and map entries of a kept case that its earlier record lacks, from the files."""
    wanted = {"statistics"} if outputs.statistics else set()
    wanted |= set(outputs.map_files(predictor, Path(result.input), Path(result.output).parent))
    if wanted <= set(result.extras):
        return result
    try:
        mask = np.asarray(load_image(result.output, role="mask")).astype(np.int64)
        extras = dict(result.extras)
        if "statistics" in wanted - set(extras):
            extras["statistics"] = case_statistics(predictor, Path(result.input), mask)
        for kind, entry in map_entries(
            predictor, Path(result.input), Path(result.output).parent, outputs, mask
        ).items():
            extras.setdefault(kind, entry)
    except (OSError, ValueError) as err:
        logger.warning("%s: statistics of the existing outputs unavailable (%s)", result.output, err)
        return result
    return dataclasses.replace(result, extras=extras)


def completed_skipped(
    predictor: Predictor, result: CaseResult, previous: Mapping[str, Any], outputs: CaseOutputs
) -> CaseResult:
    """A skipped case with its statistics and map entries: from its earlier record (by output path) when the
    file is unchanged, else from the files."""
    try:
        result = _skipped_facts(predictor, result, previous.get(str(Path(result.output).resolve())))
    except (OSError, ValueError) as err:
        logger.warning("%s: statistics of the existing mask unavailable (%s)", result.output, err)
    return _skipped_extras(predictor, result, outputs)
