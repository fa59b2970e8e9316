"""The run manifest of a prediction batch: ``predict_manifest.json``, rewritten atomically after every case.

Schema ``medseg-predict-manifest/1``: ``versions``, ``device``, ``model`` (checkpoint, ``weights_sha256``,
``config_sha256``, labels), ``infer``, ``runtime``, ``inputs_total``, ``inputs_sha256``, ``parts``, ``summary``
(counts, failed inputs with reasons) and ``cases``: one record per input with ``index``, ``input``,
``output``, ``status``, ``error``, ``seconds`` (and for a case written in this run ``stage_seconds``, see
:data:`~medseg_monai.batch.cases.STAGES`), ``shape``, ``spacing``, ``labels`` (per mask value:
``name``, ``count`` voxels/pixels, ``volume_ml`` for volumes, ``components``), ``flags``, ``sha256``,
``size_bytes``, ``mtime_ns``, ``finished``.

A batch split over processes keeps one manifest per part (``predict_manifest.part-K-of-N.json``); the
last part to finish merges them (:func:`merge_parts`). No process group is needed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medseg_monai.config import BatchOptions
from medseg_monai.io.outputs import remove_stale_temporaries
from medseg_monai.utils import atomic_write_text

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "Manifest",
    "case_flags",
    "merge_parts",
    "part_manifest_name",
    "previous_records",
    "read_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "predict_manifest.json"
MANIFEST_SCHEMA = "medseg-predict-manifest/1"


def part_manifest_name(index: int, count: int) -> str:
    """File name of the manifest of part ``index`` of ``count`` (``predict_manifest.json`` for one part)."""
    return f"predict_manifest.part-{index}-of-{count}.json" if count > 1 else MANIFEST_NAME


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A manifest's contents; ``None`` when missing, unreadable (logged) or of another schema."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("%s: ignoring unreadable manifest (%s)", path, err)
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def case_flags(
    labels: Mapping[str, Mapping[str, Any]], many_components: int = BatchOptions.many_components
) -> list[str]:
    """``empty`` (no foreground at all) and ``many_components`` (a class above the threshold)."""
    flags = []
    if labels and not any(entry.get("count", 0) for entry in labels.values()):
        flags.append("empty")
    if any(entry.get("components", 0) > many_components for entry in labels.values()):
        flags.append("many_components")
    return flags


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
    """The manifest of one part, rewritten atomically after every case (``path=None``: kept in memory).

    With ``lock`` (a context manager factory, e.g. :meth:`~medseg_monai.batch.claims.Claims.locked`)
    every save happens under it and first takes in the records other processes of the same batch wrote
    to the file meanwhile; this process's own records win, except that a ``written`` record of the same
    file replaces an own ``skipped`` one. Cases are written one compact line each, so a save costs one
    join of cached lines, not a fresh encoding of every record; and :meth:`add` saves only once as much
    time as ``1 / max_share`` saves took has passed since the last save, so rewriting a long manifest
    never costs more than that share of the batch (cases of a killed run whose records were not saved
    yet get them recomputed from their masks by the rerun).
    """

    def __init__(
        self,
        path: Path | None,
        header: dict[str, Any],
        lock: Callable[[], AbstractContextManager[Any]] | None = None,
        max_share: float = 0.05,
    ):
        self.path = path
        self.header = header
        self.lock = lock
        self.max_share = max_share
        self._head = json.dumps(header, indent=1)[:-2]
        self._last_save = (0.0, 0.0)  # (monotonic time at the end of the last save, its seconds)
        self.records: dict[int, dict[str, Any]] = {}
        self.mine: set[int] = set()
        self._lines: dict[int, str] = {}
        self._seen: tuple[int, int, int] | None = None

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["index"]] = record
        self._lines[record["index"]] = json.dumps(record)
        self.mine.add(record["index"])
        end, cost = self._last_save
        if time.monotonic() - end >= cost / self.max_share:
            self.save("running")

    def to_dict(self, status: str) -> dict[str, Any]:
        records = [self.records[i] for i in sorted(self.records)]
        return {
            **self.header,
            "status": status,
            "updated": now(),
            "summary": _summary(records, len(self.header["part"]["indices"])),
            "cases": records,
        }

    def to_text(self, status: str) -> str:
        """The manifest as JSON text: the header indented, one line per case."""
        order = sorted(self.records)
        summary = _summary([self.records[i] for i in order], len(self.header["part"]["indices"]))
        head = (
            f'{self._head},\n "status": {json.dumps(status)},\n "updated": "{now()}",\n'
            f' "summary": {json.dumps(summary)}'
        )
        cases = ",\n  ".join(self._lines[i] for i in order)
        return head + (f',\n "cases": [\n  {cases}\n ]\n}}\n' if order else ',\n "cases": []\n}\n')

    def refresh(self) -> None:
        """Take in records that other processes wrote to the file since this one last read or wrote it."""
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen == self._seen:
            return
        data = read_manifest(self.path) or {}
        same_batch = data.get("inputs_sha256") == self.header["inputs_sha256"] and (
            (data.get("part") or {}).get("count") == self.header["part"]["count"]
        )
        indices = set(self.header["part"]["indices"])
        for record in data.get("cases", []) if same_batch else []:
            index = record.get("index")
            own = self.records.get(index) if index in self.mine else None
            if index in indices and (own is None or _same_file_written(record, own)):
                self.records[index] = record
                self._lines[index] = json.dumps(record)
        self._seen = seen

    def save(self, status: str) -> None:
        if self.path is None:
            return
        start = time.monotonic()
        with self.lock() if self.lock is not None else contextlib.nullcontext():
            if self.lock is not None:
                self.refresh()
                remove_stale_temporaries(self.path)  # only a save killed mid-way leaves one: saves hold the lock
            atomic_write_text(self.path, self.to_text(status))
            stat = self.path.stat()
            self._seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        end = time.monotonic()
        self._last_save = (end, end - start)


def _same_file_written(record: Mapping[str, Any], own: Mapping[str, Any]) -> bool:
    """Whether ``record`` (another process's) is the ``written`` record of the file ``own`` skipped."""
    return (
        own.get("status") == "skipped"
        and record.get("status") == "written"
        and all(record.get(k) == own.get(k) for k in ("output", "sha256", "size_bytes", "mtime_ns"))
    )


def previous_records(output_dir: Path) -> dict[str, dict[str, Any]]:
    """Records of earlier runs in ``output_dir`` (any part), by output path; the latest wins."""
    found: dict[str, dict[str, Any]] = {}
    paths = sorted(Path(output_dir).glob("predict_manifest*.json"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        data = read_manifest(path)
        for record in (data or {}).get("cases", []):
            if record.get("output") and record.get("status") in ("written", "skipped"):
                found[record["output"]] = record
    return found


def merge_parts(output_dir: Path, count: int, inputs_sha256: str) -> dict[str, Any] | None:
    """Write ``predict_manifest.json`` from all ``count`` part manifests once every part has finished.

    Returns the merged manifest, or ``None`` while a part is still running.
    """
    output_dir = Path(output_dir)
    parts = []
    for index in range(count):
        data = read_manifest(output_dir / part_manifest_name(index, count))
        if data is None or data.get("status") != "finished" or data.get("inputs_sha256") != inputs_sha256:
            return None
        parts.append(data)
    records = sorted((r for p in parts for r in p["cases"]), key=lambda r: r["index"])
    merged = {key: value for key, value in parts[0].items() if key not in ("part", "cases", "summary", "status")}
    merged["parts"] = [
        {
            "index": p["part"]["index"],
            "count": count,
            "started": p["started"],
            "updated": p["updated"],
            "device": p["device"],
            "cases": len(p["cases"]),
        }
        for p in parts
    ]
    merged.update(status="finished", updated=now(), summary=_summary(records, merged["inputs_total"]), cases=records)
    path = output_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    logger.info("merged %d part manifests into %s", count, path)
    return merged
