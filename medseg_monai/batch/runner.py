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

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.batch.case_outputs import STATISTICS_NAME, CaseOutputs, write_batch_statistics
from medseg_monai.batch.cases import CaseResult, predict_case
from medseg_monai.batch.claims import Claims
from medseg_monai.batch.manifest import MANIFEST_NAME, MANIFEST_SCHEMA, Manifest, merge_parts, now, previous_records
from medseg_monai.batch.read_ahead import ReadAhead
from medseg_monai.batch.records import case_record, completed_skipped
from medseg_monai.batch.sharding import Shard, resolve_shard
from medseg_monai.config import BatchOptions
from medseg_monai.data.channels import source_files, source_mask_filename
from medseg_monai.errors import InputError, OutputError
from medseg_monai.inference import Predictor, PreparedImage
from medseg_monai.io import remove_stale_temporaries
from medseg_monai.utils import package_versions, progress_bars

__all__ = ["REPORT_NAME", "run_batch"]

logger = logging.getLogger(__name__)

REPORT_NAME = "predict_report.html"


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


class _BatchRun:
    """One process's run over its part of a batch: claims, the manifest, the progress bar, reading ahead."""

    def __init__(
        self, predictor: Predictor, sources: Sequence[Path], output_dir: Path, shard: Shard, options: BatchOptions
    ):
        self.predictor, self.sources, self.output_dir, self.options = predictor, sources, output_dir, options
        self.outputs = CaseOutputs.from_options(options)
        self.shard = shard
        self.indices = self.shard.select(range(len(sources)))
        self.inputs_sha = _inputs_sha256(sources)
        self.previous = previous_records(output_dir) if options.manifest else {}
        self.claims = Claims(output_dir)
        self.started_ns = time.time_ns()
        manifest = output_dir / self.shard.manifest_name if options.manifest else None
        self.book = Manifest(manifest, self._header(), lock=self.claims.locked)
        self.results: dict[int, CaseResult] = {}
        self.failed = 0
        taken = lambda output: self.claims.holder(output.name) is not None  # noqa: E731
        self.read_ahead = ReadAhead(
            predictor, sources, self.indices, output_dir, options.overwrite, options.read_ahead, taken, self.outputs
        )

    def _header(self) -> dict[str, Any]:
        shard = self.shard
        return {
            "schema": MANIFEST_SCHEMA,
            "started": now(),
            "command": "medseg predict",
            "output_dir": str(self.output_dir.resolve()),
            "versions": package_versions(),
            **self.predictor.describe(),
            "many_components_threshold": self.options.many_components,
            "inputs_total": len(self.sources),
            "inputs_sha256": self.inputs_sha,
            "part": {"index": shard.index, "count": shard.count, "launcher": shard.launcher, "indices": self.indices},
        }

    def run(self) -> list[CaseResult]:
        """Every case of this part (those another process holds at the end), then the merge and the report."""
        from tqdm.auto import tqdm

        self.book.save("running")
        if self.shard.sharded:
            logger.info("%s: %d of %d cases", self.shard.label, len(self.indices), len(self.sources))
        bar_row = self.shard.index if self.shard.launcher == "torchrun" else None  # one bar per process
        label = f"predict {self.shard.label}".strip()
        self.drawn = self.options.progress and progress_bars()  # else one log line per case
        self.bar = tqdm(self.indices, desc=label, unit="case", disable=not self.drawn, position=bar_row)
        self.done, self.run_started = 0, time.monotonic()
        deferred = []
        try:
            for position, index in enumerate(self.bar):
                if not self._claimed_run(index, lambda position=position: self.read_ahead.take(position)):
                    self.read_ahead.discard(position)  # another process is on it: come back at the end
                    deferred.append(index)
            for index in deferred:
                self.claims.wait(self._name(index))  # returns holding the claim
                self._run_claimed(index, lambda: None)
            self.book.save("finished" if set(self.book.records) >= set(self.indices) else "running")
            with self.claims.locked():  # one process at a time merges and reports; a killed one's temporaries go
                _finish_batch(self.book, self.shard, self.output_dir, self.inputs_sha, self.options)
        finally:
            self.read_ahead.close()
            self.claims.close()
        return [self.results[i] for i in self.indices]

    def _name(self, index: int) -> str:
        return self.predictor.mask_path(self.sources[index], self.output_dir).name

    def _claimed_run(self, index: int, prepared: Callable[[], Callable[[], PreparedImage] | None]) -> bool:
        """Claim case ``index`` and run it; ``False`` when another process holds the claim."""
        if not self.claims.claim(self._name(index)):
            return False
        self._run_claimed(index, prepared)
        return True

    def _run_claimed(self, index: int, prepared: Callable[[], Callable[[], PreparedImage] | None]) -> None:
        """Run case ``index``, whose claim this process holds, and release the claim."""
        try:
            self._run_case(index, prepared())
        finally:
            self.claims.release(self._name(index))

    def _run_case(self, index: int, prepared: Callable[[], PreparedImage] | None) -> None:
        options = self.options
        result = predict_case(
            self.predictor, self.sources[index], self.output_dir, overwrite=options.overwrite, prepared=prepared,
            outputs=self.outputs,
        )  # fmt: skip
        self.results[index] = result
        if result.status == "skipped" and _recorded_by_another(self.book, self.claims, index, result, self.started_ns):
            return
        if result.status == "skipped":
            result = completed_skipped(self.predictor, result, self.previous, self.outputs)
        self.failed += result.status == "failed"
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.results[index] = result
        self._log_case(result)
        self.book.add(case_record(index, result, options.many_components, options.high_entropy))

    def _log_case(self, result: CaseResult) -> None:
        """Without a drawn bar, one line per case: ``predict 3/20 case_003.nii.gz: written in 4.2 s (...)``."""
        self.done += 1
        if self.drawn or not self.options.progress:
            return
        rate = self.done / max(time.monotonic() - self.run_started, 1e-9) * 60
        what = result.status if result.ok else f"failed ({result.error})"
        label = f"predict {self.shard.label}".strip()
        logger.info(
            "%s %d/%d %s: %s in %.1f s (%.1f cases/min, %d failed)",
            label, self.done, len(self.indices), result.input.name, what, result.seconds, rate, self.failed,
        )  # fmt: skip


def run_batch(
    predictor: Predictor,
    inputs: Any,
    output_dir: str | Path,
    options: BatchOptions | None = None,
    shard: Shard | None = None,
) -> list[CaseResult]:
    """Predict this part's share of ``inputs`` into ``output_dir`` with one loaded ``predictor``.

    Args:
        predictor: the loaded model and its inference settings.
        inputs: a file, a folder, a DICOM series folder, a glob, a ``.csv``/``.txt`` list, or a list of these
            (see :func:`medseg_monai.data.collect_inputs`).
        output_dir: where masks, the manifest and (by default) the QA report go.
        options: overwrite, progress bar, parts, manifest and report (:class:`~medseg_monai.config.BatchOptions`).
        shard: this process's part, when the caller resolved it already (else from ``options`` and the launch).

    Returns:
        One :class:`~medseg_monai.batch.cases.CaseResult` per case of this part, in order; a failing case is
        recorded and the batch goes on (see :func:`~medseg_monai.batch.cases.failures`).

    Raises:
        ValueError: before any work, for an output folder equal to an input folder or two inputs whose
            masks would share a name, or contradictory parts.
    """
    from medseg_monai.data.inputs import collect_inputs

    options = options or BatchOptions()
    CaseOutputs.from_options(options).check(predictor)
    sources = collect_inputs(inputs, options.series)
    output_dir = Path(output_dir)
    _check_outputs(sources, output_dir, predictor.plan.output_format, options.overwrite)
    shard = shard or resolve_shard(options.num_parts, options.part_id)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: the output path is a file, not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    return _BatchRun(predictor, sources, output_dir, shard, options).run()
