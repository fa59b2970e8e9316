"""Batches of cases: the only place that loops over inputs.

:func:`run_batch` takes a loaded :class:`~medseg_monai.inference.Predictor` and one frozen
:class:`~medseg_monai.config.BatchOptions`, and owns everything about a batch:

- **skip-done and resume**: every mask is written atomically (temporary file, then rename), so an
  output under its final name is complete; :func:`~medseg_monai.io.is_complete` also checks that it
  reads back with the source's shape, and an interrupted run's temporaries are removed when their
  case is redone. A batch goes on past a failing case and reports it;
- **the manifest** (:mod:`~medseg_monai.batch.manifest`), rewritten after every case, so a batch
  killed at any point keeps the record of everything finished; a rerun skips those cases and carries
  their records over (or recomputes them from the mask when no record matches);
- **several processes on one folder**: a case is worked on only under its claim
  (:mod:`~medseg_monai.batch.claims`); a process skips cases another one holds, comes back to them at
  the end (taking over the claim of a process that died), and merges the others' records into the
  shared manifest under the folder lock, so every case is recorded once;
- **sharding**: :class:`Shard` splits the sorted case list round-robin (``cases[part::parts]``): no
  overlap, no gap, and the same split in every process; whichever part finishes last merges the part
  manifests and writes the QA report (:mod:`medseg_monai.reporting.qa_page`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.batch.case_outputs import (
    STATISTICS_NAME,
    CaseOutputs,
    case_complete,
    case_statistics,
    discard_case,
    map_entries,
    write_batch_statistics,
    write_maps,
)
from medseg_monai.batch.claims import Claims
from medseg_monai.batch.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    Manifest,
    case_flags,
    merge_parts,
    now,
    part_manifest_name,
    previous_records,
    read_manifest,
)
from medseg_monai.batch.read_ahead import ReadAhead
from medseg_monai.config import BatchOptions
from medseg_monai.data.channels import ChannelCase, as_source, source_files, source_label, source_mask_filename
from medseg_monai.errors import ConfigError, InputError, OutputError, error_message, is_expected, write_traceback
from medseg_monai.inference.predictor import Predictor, PreparedImage
from medseg_monai.io import file_sha256, load_image, mask_statistics, read_geometry, remove_stale_temporaries
from medseg_monai.utils import package_versions

__all__ = [
    "MANIFEST_NAME",
    "REPORT_NAME",
    "CaseResult",
    "Shard",
    "failures",
    "predict_case",
    "resolve_shard",
    "run_batch",
    "wait_for_parts",
]

logger = logging.getLogger(__name__)

REPORT_NAME = "predict_report.html"


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """Outcome of one input: ``status`` is ``written``, ``skipped`` (a complete output existed) or ``failed``.

    ``warnings`` are what the input checks said about the image (NaN voxels replaced, a constant image).
    ``internal`` marks a failure that is a bug in this package rather than a problem of the input.
    ``labels`` maps each foreground mask value (as a string) to ``{"name", "count", "components"}``
    plus ``"volume_ml"`` for volumes; ``shape``/``spacing`` are the mask's (the source's) grid.
    ``extras`` holds what :class:`~medseg_monai.batch.case_outputs.CaseOutputs` asked for: ``probabilities``
    and ``entropy`` (files, scale, mean foreground entropy) and ``statistics`` (rows per label).
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

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def failures(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The failed cases of a batch, in order."""
    return [r for r in results if not r.ok]


# ---------------------------------------------------------------------------------------------- sharding
@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count``; ``launcher`` is ``single``, ``explicit`` (``--part-id``) or ``torchrun``."""

    index: int = 0
    count: int = 1
    launcher: str = "single"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"part id must be in [0, {self.count}), got part {self.index} of {self.count}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def select(self, items: Sequence[Any]) -> list[Any]:
        """This part's share: every ``count``-th item starting at ``index``."""
        return list(items[self.index :: self.count])

    @property
    def manifest_name(self) -> str:
        return part_manifest_name(self.index, self.count)

    @property
    def label(self) -> str:
        return f"part {self.index + 1}/{self.count}" if self.sharded else ""


def resolve_shard(
    num_parts: int | None = None, part_id: int | None = None, environ: Mapping[str, str] | None = None
) -> Shard:
    """The part this process runs: explicit ``num_parts``/``part_id``, else ``torchrun``'s ``WORLD_SIZE``/``RANK``.

    Raises:
        ValueError: only one of ``num_parts``/``part_id``, an out-of-range part, or explicit parts
            that contradict a ``torchrun`` launch.
    """
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if (num_parts is None) != (part_id is None):
        raise ConfigError(f"--num-parts and --part-id go together, got num_parts={num_parts}, part_id={part_id}")
    if num_parts is not None:
        if world > 1 and (num_parts, part_id) != (world, int(env.get("RANK", "0"))):
            raise ConfigError(
                f"num_parts={num_parts}, part_id={part_id} contradict the torchrun launch "
                f"(WORLD_SIZE={world}, RANK={env.get('RANK')}); give one or the other"
            )
        if num_parts < 1:
            raise ConfigError(f"num_parts must be >= 1, got {num_parts}")
        return Shard(int(part_id), int(num_parts), "explicit" if num_parts > 1 else "single")
    if world > 1:
        return Shard(int(env.get("RANK", "0")), world, "torchrun")
    return Shard()


def wait_for_parts(output_dir: str | Path, shard: Shard, poll_s: float = 2.0, timeout_s: float | None = None) -> bool:
    """Block until every part of ``shard``'s batch has finished (its part manifest says so).

    For ``torchrun``, which stops all workers as soon as one exits non-zero: a part with failed cases
    waits here before exiting with status 1. Returns False on ``timeout_s`` or without a manifest.
    """
    output_dir = Path(output_dir)
    own = read_manifest(output_dir / shard.manifest_name)
    if own is None:
        return False
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        states = [read_manifest(output_dir / part_manifest_name(i, shard.count)) or {} for i in range(shard.count)]
        if all(s.get("status") == "finished" and s.get("inputs_sha256") == own["inputs_sha256"] for s in states):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


# ---------------------------------------------------------------------------------------------- one case
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
        warnings: tuple[str, ...] = ()
        maps = None
        if predictor.config.infer.stitching == "slab":
            image = prepared() if prepared is not None else predictor.prepare(source)
            warnings, maps = image.warnings, predictor.predict_maps(image, outputs.maps)
            mask = maps.mask
        else:
            mask = predictor.predict_image(source)
        output = predictor.save_mask(mask, source, output)
        try:
            extras = write_maps(predictor, maps, source, Path(output_dir), outputs) if maps is not None else {}
        except Exception:  # no mask without the maps asked for: the next run redoes the case whole
            discard_case(predictor, source, output, outputs)
            raise
        spacing = read_geometry(output).spacing
        stats = mask_statistics(mask, spacing, predictor.label_names(source), predictor.output_values(source)[0])
        if outputs.statistics:
            extras["statistics"] = case_statistics(predictor, source, mask, stats)
        return CaseResult(
            source,
            output,
            "written",
            seconds=time.perf_counter() - start,
            shape=tuple(int(s) for s in mask.shape),
            spacing=tuple(float(s) for s in spacing),
            labels=stats,
            sha256=file_sha256(output),
            warnings=warnings,
            extras=extras,
        )
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


def _traceback_log(err: BaseException, output_dir: str | Path, source: Path) -> str:
    try:
        return str(write_traceback(err, output_dir, f"medseg predict {source}"))
    except OSError as log_err:  # the output folder itself is the problem
        return f"(not written: {log_err})"


def _uncertainty_flags(extras: Mapping[str, Any], high_entropy: float) -> list[str]:
    mean = (extras.get("entropy") or {}).get("mean_foreground")
    return ["high_uncertainty"] if mean is not None and mean > high_entropy else []


def _record(
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


def _complete_skipped(predictor: Predictor, result: CaseResult, previous: Mapping[str, Any] | None) -> CaseResult:
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


def _recorded_by_another(book: Manifest, claims: Claims, index: int, result: CaseResult, started_ns: int) -> bool:
    """Whether another process of this batch wrote this skipped case's mask since ``started_ns`` and recorded it."""
    if book.path is None or result.output is None:
        return False
    stat = Path(result.output).stat()
    if stat.st_mtime_ns < started_ns:
        return False
    with claims.locked():
        book.refresh()
    record = book.records.get(index) if index not in book.mine else None
    return (
        bool(record)
        and record.get("status") in ("written", "skipped")
        and (record.get("size_bytes"), record.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
    )


def _check_outputs(sources: Sequence[Path], output_dir: Path, output_format: str | None, overwrite: bool) -> None:
    seen: dict[str, Path] = {}
    clashes = []
    resolved_out = output_dir.resolve()
    for source in sources:
        if resolved_out == source.parent.resolve() and not overwrite:
            raise InputError(f"{output_dir}: output folder is the input folder; choose another or pass overwrite")
        name = source_mask_filename(source, output_format)
        if name in seen:
            clashes.append(f"{seen[name]} and {source} -> {name}")
        seen.setdefault(name, source)
    if clashes:
        raise InputError(f"{len(clashes)} output name clash(es) in {output_dir}: " + "; ".join(clashes[:5]))


def _inputs_sha256(sources: Sequence[Path]) -> str:
    return hashlib.sha256(
        "\n".join("\t".join(str(f.resolve()) for f in source_files(p)) for p in sources).encode()
    ).hexdigest()


# ---------------------------------------------------------------------------------------------- the batch
def _finish_case(
    predictor: Predictor,
    result: CaseResult,
    previous: Mapping[str, Any],
    bar: Any,
    failed: int,
    results: list[CaseResult],
    book: Manifest,
    index: int,
    options: BatchOptions,
) -> int:
    """Record one case's result (statistics of a skipped one from its earlier record); 1 when it failed."""
    if result.status == "skipped":
        try:
            result = _complete_skipped(predictor, result, previous.get(str(Path(result.output).resolve())))
        except (OSError, ValueError) as err:
            logger.warning("%s: statistics of the existing mask unavailable (%s)", result.output, err)
    if result.status == "skipped":
        result = _skipped_extras(predictor, result, CaseOutputs.from_options(options))
    bar.set_postfix(failed=failed + (result.status == "failed"), refresh=False)
    results.append(result)
    book.add(_record(index, result, options.many_components, options.high_entropy))
    return int(result.status == "failed")


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


def _finish_batch(book: Manifest, shard: Shard, output_dir: Path, inputs_sha: str, options: BatchOptions) -> None:
    """Merge the part manifests (the last part to finish) and write the QA report; under the folder lock."""
    final: dict[str, Any] | None = book.to_dict("finished")
    if options.manifest and shard.sharded:
        remove_stale_temporaries(output_dir / MANIFEST_NAME)
        final = merge_parts(output_dir, shard.count, inputs_sha)
    if final is not None and (options.statistics or (output_dir / STATISTICS_NAME).exists()):
        written = write_batch_statistics(final.get("cases") or [], output_dir)
        if written is not None:
            logger.info("label statistics: %s", written)
    if options.report and final is not None:
        from medseg_monai.reporting import write_report

        remove_stale_temporaries(Path(options.report))
        write_report(final, Path(options.report))
    elif options.report and shard.sharded:
        logger.info("%s done; the report is written by the last part to finish", shard.label)


def run_batch(
    predictor: Predictor, inputs: Any, output_dir: str | Path, options: BatchOptions | None = None
) -> list[CaseResult]:
    """Predict this part's share of ``inputs`` into ``output_dir`` with one loaded ``predictor``.

    Args:
        predictor: the loaded model and its inference settings.
        inputs: a file, a folder, a DICOM series folder, a glob, a ``.csv``/``.txt`` list, or a list of these
            (see :func:`medseg_monai.data.collect_inputs`).
        output_dir: where masks, the manifest and (by default) the QA report go.
        options: overwrite, progress bar, parts, manifest and report (:class:`~medseg_monai.config.BatchOptions`).

    Returns:
        One :class:`CaseResult` per case of this part, in order; a failing case is recorded and the batch
        goes on (see :func:`failures`).

    Raises:
        ValueError: before any work, for an output folder equal to an input folder or two inputs whose
            masks would share a name, or contradictory parts.
    """
    from tqdm.auto import tqdm

    from medseg_monai.data.datalist import collect_inputs

    options = options or BatchOptions()
    outputs = CaseOutputs.from_options(options)
    outputs.check(predictor)
    sources = collect_inputs(inputs, options.series)
    output_dir = Path(output_dir)
    _check_outputs(sources, output_dir, predictor.config.infer.output_format, options.overwrite)
    shard = resolve_shard(options.num_parts, options.part_id)
    indices = shard.select(range(len(sources)))
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: the output path is a file, not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs_sha = _inputs_sha256(sources)
    previous = previous_records(output_dir) if options.manifest else {}
    header = {
        "schema": MANIFEST_SCHEMA,
        "started": now(),
        "command": "medseg predict",
        "output_dir": str(output_dir.resolve()),
        "versions": package_versions(),
        **predictor.describe(),
        "many_components_threshold": options.many_components,
        "inputs_total": len(sources),
        "inputs_sha256": inputs_sha,
        "part": {"index": shard.index, "count": shard.count, "launcher": shard.launcher, "indices": indices},
    }
    claims = Claims(output_dir)
    started_ns = time.time_ns()
    book = Manifest(output_dir / shard.manifest_name if options.manifest else None, header, lock=claims.locked)
    book.save("running")
    if shard.sharded:
        logger.info("%s: %d of %d cases", shard.label, len(indices), len(sources))
    results: list[CaseResult] = []
    position = shard.index if shard.launcher == "torchrun" else None
    bar = tqdm(
        indices, desc=f"predict {shard.label}".strip(), unit="case", disable=not options.progress, position=position
    )
    failed = 0
    read_ahead = ReadAhead(
        predictor,
        sources,
        indices,
        output_dir,
        options.overwrite,
        enabled=options.read_ahead,
        taken=lambda output: claims.holder(output.name) is not None,
        outputs=outputs,
    )
    by_index: dict[int, CaseResult] = {}

    def run_case(index: int, prepared: Callable[[], PreparedImage] | None) -> None:
        nonlocal failed
        result = predict_case(
            predictor, sources[index], output_dir, overwrite=options.overwrite, prepared=prepared, outputs=outputs
        )
        by_index[index] = result
        if result.status == "skipped" and _recorded_by_another(book, claims, index, result, started_ns):
            return
        failed += _finish_case(predictor, result, previous, bar, failed, results, book, index, options)
        by_index[index] = results[-1]

    deferred = []
    try:
        for position, index in enumerate(bar):
            name = predictor.mask_path(sources[index], output_dir).name
            if not claims.claim(name):  # another process is on it: come back at the end
                read_ahead.discard(position)
                deferred.append(index)
                continue
            try:
                run_case(index, read_ahead.take(position))
            finally:
                claims.release(name)
        for index in deferred:
            name = predictor.mask_path(sources[index], output_dir).name
            claims.wait(name)
            try:
                run_case(index, None)
            finally:
                claims.release(name)
        results = [by_index[i] for i in indices]
        book.save("finished" if set(book.records) >= set(indices) else "running")
        with claims.locked():  # one process at a time merges and reports; a killed one's temporaries go
            _finish_batch(book, shard, output_dir, inputs_sha, options)
    finally:
        read_ahead.close()
        claims.close()
    return results
