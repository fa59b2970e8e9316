"""Batches of cases: sharding, skip-done, per-case statistics and the run manifest.

A batch is resumable and can be split over processes:

- every mask is written atomically (temporary file, then rename), so an output under its final name
  is complete; :func:`is_complete` also checks that it reads back with the source's shape, and an
  interrupted run's temporaries are removed when their case is redone;
- ``predict_manifest.json`` in the output folder is rewritten atomically after every case, so a
  batch killed at any point keeps the record of everything finished; a rerun skips those cases and
  carries their records over (or recomputes them from the mask when no record matches);
- :class:`Shard` splits the sorted case list round-robin (``cases[part::parts]``): no overlap, no
  gap, and the same split in every process. Part ``K`` of ``N`` keeps
  ``predict_manifest.part-K-of-N.json``; whichever part finishes last merges them into
  ``predict_manifest.json`` (and writes the QA report). No process group is needed.

Manifest schema (``medseg-predict-manifest/1``): ``versions``, ``device``, ``model`` (checkpoint,
``weights_sha256``, ``config_sha256``, labels), ``infer``, ``inputs_total``, ``inputs_sha256``,
``parts``, ``summary`` (counts, failed inputs with reasons) and ``cases``: one record per input with
``index``, ``input``, ``output``, ``status``, ``error``, ``seconds``, ``shape``, ``spacing``,
``labels`` (per mask value: ``name``, ``count`` voxels/pixels, ``volume_ml`` for volumes,
``components``), ``flags``, ``sha256``, ``size_bytes``, ``finished``.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg_monai.utils import atomic_write_text, package_versions

if TYPE_CHECKING:
    from medseg_monai.engines.predictor import CaseResult, Predictor

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MANY_COMPONENTS",
    "REPORT_NAME",
    "Shard",
    "case_flags",
    "count_components",
    "file_sha256",
    "is_complete",
    "mask_statistics",
    "merge_parts",
    "package_versions",
    "remove_stale_temporaries",
    "resolve_shard",
    "run_batch",
    "wait_for_parts",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "predict_manifest.json"
MANIFEST_SCHEMA = "medseg-predict-manifest/1"
REPORT_NAME = "predict_report.html"
#: a class with more connected components than this is flagged in the manifest and the report
MANY_COMPONENTS = 10


# ---------------------------------------------------------------------------------------------- sharding
@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count``; ``launcher`` is ``single``, ``explicit`` (``--part-id``) or ``torchrun``."""

    index: int = 0
    count: int = 1
    launcher: str = "single"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"part id must be in [0, {self.count}), got part {self.index} of {self.count}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def select(self, items: Sequence[Any]) -> list[Any]:
        """This part's share: every ``count``-th item starting at ``index``."""
        return list(items[self.index :: self.count])

    @property
    def manifest_name(self) -> str:
        return part_manifest_name(self.index, self.count) if self.sharded else MANIFEST_NAME

    @property
    def label(self) -> str:
        return f"part {self.index + 1}/{self.count}" if self.sharded else ""


def part_manifest_name(index: int, count: int) -> str:
    return f"predict_manifest.part-{index}-of-{count}.json"


def resolve_shard(num_parts: int | None = None, part_id: int | None = None, environ: Mapping[str, str] | None = None) -> Shard:
    """The part this process runs: explicit ``num_parts``/``part_id``, else ``torchrun``'s ``WORLD_SIZE``/``RANK``.

    Raises:
        ValueError: only one of ``num_parts``/``part_id``, an out-of-range part, or explicit parts
            that contradict a ``torchrun`` launch.
    """
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if (num_parts is None) != (part_id is None):
        raise ValueError(f"--num-parts and --part-id go together, got num_parts={num_parts}, part_id={part_id}")
    if num_parts is not None:
        if world > 1 and (num_parts, part_id) != (world, int(env.get("RANK", "0"))):
            raise ValueError(
                f"num_parts={num_parts}, part_id={part_id} contradict the torchrun launch "
                f"(WORLD_SIZE={world}, RANK={env.get('RANK')}); give one or the other"
            )
        if num_parts < 1:
            raise ValueError(f"num_parts must be >= 1, got {num_parts}")
        return Shard(int(part_id), int(num_parts), "explicit" if num_parts > 1 else "single")
    if world > 1:
        return Shard(int(env.get("RANK", "0")), world, "torchrun")
    return Shard()


# ---------------------------------------------------------------------------------------------- files
def is_complete(output: Path, source: Path) -> bool:
    """True when ``output`` exists, reads back, and has the spatial shape of ``source``."""
    from medseg_monai.io import read_geometry

    output = Path(output)
    try:
        if not output.is_file() or output.stat().st_size == 0:
            return False
        return read_geometry(output).shape == read_geometry(source).shape
    except (OSError, ValueError) as err:
        logger.info("%s: existing output is not usable (%s); predicting again", output, err)
        return False


def remove_stale_temporaries(output: Path) -> list[Path]:
    """Delete temporaries an interrupted write of ``output`` (or its label sidecar) left beside it."""
    from medseg_monai.io import label_sidecar_path

    removed = []
    for final in (Path(output), label_sidecar_path(output)):
        for name in glob.glob(str(final.parent / f".{glob.escape(final.name)}.*.tmp*")):
            try:
                Path(name).unlink()
                removed.append(Path(name))
            except FileNotFoundError:
                continue
    if removed:
        logger.info("removed %d leftover temporary file(s) of %s", len(removed), output)
    return removed


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- statistics
def count_components(binary: np.ndarray) -> int:
    """Connected components of a boolean mask (full connectivity: 8 in 2D, 26 in 3D)."""
    from scipy import ndimage

    if not binary.any():
        return 0
    box = []
    for axis in range(binary.ndim):
        hit = np.flatnonzero(binary.any(axis=tuple(a for a in range(binary.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    structure = ndimage.generate_binary_structure(binary.ndim, binary.ndim)
    return int(ndimage.label(binary[tuple(box)], structure=structure)[1])


def mask_statistics(
    mask: np.ndarray, spacing: Sequence[float], names: Mapping[int, str] | None = None, background: int = 0
) -> dict[str, dict[str, Any]]:
    """Per foreground value: ``name``, ``count`` (voxels or pixels), ``volume_ml`` (3D), ``components``.

    Every named value is listed (count 0 when absent), plus any unnamed value present in the mask.
    """
    names = dict(names or {})
    if mask.dtype.kind == "u" or mask.dtype == bool:
        counts = np.bincount(mask.ravel().astype(np.int64, copy=False) if mask.dtype == bool else mask.ravel())
        present = {int(v): int(c) for v, c in enumerate(counts) if c}
    else:
        present = {int(v): int(c) for v, c in zip(*np.unique(mask, return_counts=True))}
    values = sorted((set(names) | set(present)) - {int(background)})
    voxel_ml = float(np.prod(spacing)) / 1000.0 if mask.ndim == 3 else None
    stats: dict[str, dict[str, Any]] = {}
    for value in values:
        count = present.get(value, 0)
        entry: dict[str, Any] = {"name": names.get(value, f"label_{value}"), "count": count}
        if voxel_ml is not None:
            entry["volume_ml"] = round(count * voxel_ml, 6)
        entry["components"] = count_components(mask == value) if count else 0
        stats[str(value)] = entry
    return stats


def case_flags(labels: Mapping[str, Mapping[str, Any]], many_components: int = MANY_COMPONENTS) -> list[str]:
    """``empty`` (no foreground at all) and ``many_components`` (a class above the threshold)."""
    flags = []
    if labels and not any(entry.get("count", 0) for entry in labels.values()):
        flags.append("empty")
    if any(entry.get("components", 0) > many_components for entry in labels.values()):
        flags.append("many_components")
    return flags


# ---------------------------------------------------------------------------------------------- manifest
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("%s: ignoring unreadable manifest (%s)", path, err)
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def _summary(records: Sequence[Mapping[str, Any]], total: int) -> dict[str, Any]:
    counts = {status: sum(r["status"] == status for r in records) for status in ("written", "skipped", "failed")}
    return {
        "cases_total": total,
        "cases_done": len(records),
        **counts,
        "flagged": sum(bool(r.get("flags")) for r in records),
        "failed_cases": [{"input": r["input"], "error": r["error"]} for r in records if r["status"] == "failed"],
    }


class Manifest:
    """The manifest of one part, rewritten atomically after every case (``path=None``: kept in memory)."""

    def __init__(self, path: Path | None, header: dict[str, Any]):
        self.path = path
        self.header = header
        self.records: dict[int, dict[str, Any]] = {}

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["index"]] = record
        self.save("running")

    def to_dict(self, status: str) -> dict[str, Any]:
        records = [self.records[i] for i in sorted(self.records)]
        return {**self.header, "status": status, "updated": _now(),
                "summary": _summary(records, len(self.header["part"]["indices"])), "cases": records}

    def save(self, status: str) -> None:
        if self.path is not None:
            atomic_write_text(self.path, json.dumps(self.to_dict(status), indent=1) + "\n")


def _previous_records(output_dir: Path) -> dict[str, dict[str, Any]]:
    """Records of earlier runs in ``output_dir`` (any part), by output path; the latest wins."""
    found: dict[str, dict[str, Any]] = {}
    paths = sorted(output_dir.glob("predict_manifest*.json"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        data = _read_json(path)
        for record in (data or {}).get("cases", []):
            if record.get("output") and record.get("status") in ("written", "skipped"):
                found[record["output"]] = record
    return found


def merge_parts(output_dir: Path, count: int, inputs_sha256: str) -> Path | None:
    """Write ``predict_manifest.json`` from all ``count`` part manifests once every part has finished."""
    output_dir = Path(output_dir)
    parts = []
    for index in range(count):
        data = _read_json(output_dir / part_manifest_name(index, count))
        if data is None or data.get("status") != "finished" or data.get("inputs_sha256") != inputs_sha256:
            return None
        parts.append(data)
    records = sorted((r for p in parts for r in p["cases"]), key=lambda r: r["index"])
    merged = {key: value for key, value in parts[0].items() if key not in ("part", "cases", "summary", "status")}
    merged["parts"] = [
        {"index": p["part"]["index"], "count": count, "started": p["started"], "updated": p["updated"],
         "device": p["device"], "cases": len(p["cases"])}
        for p in parts
    ]
    merged.update(status="finished", updated=_now(), summary=_summary(records, merged["inputs_total"]), cases=records)
    path = output_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    logger.info("merged %d part manifests into %s", count, path)
    return path


def wait_for_parts(output_dir: Path, shard: Shard, poll_s: float = 2.0, timeout_s: float | None = None) -> bool:
    """Block until every part of ``shard``'s batch has finished (its part manifest says so).

    For ``torchrun``, which stops all workers as soon as one exits non-zero: a part with failed cases
    waits here before exiting with status 1. Returns False on ``timeout_s`` or without a manifest.
    """
    output_dir = Path(output_dir)
    own = _read_json(output_dir / shard.manifest_name)
    if own is None:
        return False
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        states = [_read_json(output_dir / part_manifest_name(i, shard.count)) or {} for i in range(shard.count)]
        if all(s.get("status") == "finished" and s.get("inputs_sha256") == own["inputs_sha256"] for s in states):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


# ---------------------------------------------------------------------------------------------- records
def _record(index: int, result: CaseResult, many_components: int) -> dict[str, Any]:
    output = result.output if result.output is not None and result.status != "failed" else None
    stat = output.stat() if output is not None and output.exists() else None
    return {
        "index": index,
        "input": str(Path(result.input).resolve()),
        "output": str(output.resolve()) if output is not None else None,
        "status": result.status,
        "error": result.error,
        "seconds": round(float(result.seconds), 3),
        "shape": list(result.shape) if result.shape else None,
        "spacing": [round(s, 6) for s in result.spacing] if result.spacing else None,
        "labels": result.labels,
        "flags": case_flags(result.labels, many_components) if result.status != "failed" else ["failed"],
        "sha256": result.sha256,
        "size_bytes": stat.st_size if stat else None,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "finished": _now(),
    }


def _complete_skipped(predictor: Predictor, result: CaseResult, previous: Mapping[str, Any] | None) -> CaseResult:
    """Fill a skipped case's statistics from its earlier record when the file is unchanged, else from the mask."""
    from medseg_monai.io import load_image, read_geometry

    output = Path(result.output)
    stat = output.stat()
    if previous and previous.get("sha256") and previous.get("size_bytes") == stat.st_size and previous.get("mtime_ns") == stat.st_mtime_ns:
        return dataclasses.replace(
            result, shape=tuple(previous.get("shape") or ()), spacing=tuple(previous.get("spacing") or ()),
            labels=previous.get("labels") or {}, sha256=previous["sha256"], seconds=previous.get("seconds") or 0.0,
        )
    mask = np.asarray(load_image(output))
    geometry = read_geometry(output)
    labels = mask_statistics(mask, geometry.spacing, predictor.label_names(result.input), predictor.output_values(result.input)[0])
    return dataclasses.replace(result, shape=tuple(geometry.shape), spacing=tuple(geometry.spacing), labels=labels, sha256=file_sha256(output))


def _check_outputs(sources: Sequence[Path], output_dir: Path, output_format: str | None, overwrite: bool) -> None:
    from medseg_monai.io import mask_filename

    seen: dict[str, Path] = {}
    clashes = []
    resolved_out = output_dir.resolve()
    for source in sources:
        if resolved_out == source.parent.resolve() and not overwrite:
            raise ValueError(f"{output_dir}: output folder is the input folder; choose another or pass overwrite")
        name = mask_filename(source, output_format)
        if name in seen:
            clashes.append(f"{seen[name]} and {source} -> {name}")
        seen.setdefault(name, source)
    if clashes:
        raise ValueError(f"{len(clashes)} output name clash(es) in {output_dir}: " + "; ".join(clashes[:5]))


def _inputs_sha256(sources: Sequence[Path]) -> str:
    return hashlib.sha256("\n".join(str(p.resolve()) for p in sources).encode()).hexdigest()


def run_batch(
    predictor: Predictor,
    inputs: Any,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    num_parts: int | None = None,
    part_id: int | None = None,
    manifest: bool = True,
    report: bool | str | Path | None = None,
    many_components: int = MANY_COMPONENTS,
) -> list[CaseResult]:
    """Predict this part's share of ``inputs`` into ``output_dir`` with one loaded ``predictor``.

    Raises ``ValueError`` before any work for an output folder equal to an input folder or two
    inputs whose masks would share a name; a failing case is recorded and the batch goes on.
    """
    from tqdm.auto import tqdm

    from medseg_monai.data.datalist import collect_inputs

    sources = collect_inputs(inputs)
    output_dir = Path(output_dir)
    _check_outputs(sources, output_dir, predictor.config.infer.output_format, overwrite)
    shard = resolve_shard(num_parts, part_id)
    indices = shard.select(range(len(sources)))
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs_sha = _inputs_sha256(sources)
    previous = _previous_records(output_dir) if manifest else {}
    header = {
        "schema": MANIFEST_SCHEMA,
        "started": _now(),
        "command": "medseg predict",
        "output_dir": str(output_dir.resolve()),
        "versions": package_versions(),
        **predictor.describe(),
        "many_components_threshold": many_components,
        "inputs_total": len(sources),
        "inputs_sha256": inputs_sha,
        "part": {"index": shard.index, "count": shard.count, "launcher": shard.launcher, "indices": indices},
    }
    book = Manifest(output_dir / shard.manifest_name if manifest else None, header)
    book.save("running")
    if shard.sharded:
        logger.info("%s: %d of %d cases", shard.label, len(indices), len(sources))
    results = []
    bar = tqdm(indices, desc=f"predict {shard.label}".strip(), unit="case", disable=not progress, position=shard.index if shard.launcher == "torchrun" else None)
    failed = 0
    for index in bar:
        result = predictor.predict_file(sources[index], output_dir, overwrite=overwrite)
        if result.status == "skipped":
            try:
                result = _complete_skipped(predictor, result, previous.get(str(Path(result.output).resolve())))
            except (OSError, ValueError) as err:
                logger.warning("%s: statistics of the existing mask unavailable (%s)", result.output, err)
        failed += result.status == "failed"
        bar.set_postfix(failed=failed, refresh=False)
        results.append(result)
        book.add(_record(index, result, many_components))
    book.save("finished")
    final = book.to_dict("finished")
    merged_path = None
    if manifest and shard.sharded:
        merged_path = merge_parts(output_dir, shard.count, inputs_sha)
        final = _read_json(merged_path) if merged_path else None
    if report and final is not None:
        from medseg_monai.qa_report import write_report

        path = output_dir / REPORT_NAME if report is True else Path(report)
        write_report(final, path)
    elif report and shard.sharded:
        logger.info("%s done; the report is written by the last part to finish", shard.label)
    return results

