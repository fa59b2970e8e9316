"""The run manifest of a prediction batch: ``predict_manifest.json``, rewritten atomically after every case.

Schema ``medseg-predict-manifest/1``: ``versions``, ``device``, ``model`` (checkpoint, ``weights_sha256``,
``config_sha256``, labels), ``infer``, ``inputs_total``, ``inputs_sha256``, ``parts``, ``summary``
(counts, failed inputs with reasons) and ``cases``: one record per input with ``index``, ``input``,
``output``, ``status``, ``error``, ``seconds``, ``shape``, ``spacing``, ``labels`` (per mask value:
``name``, ``count`` voxels/pixels, ``volume_ml`` for volumes, ``components``), ``flags``, ``sha256``,
``size_bytes``, ``finished``.

A batch split over processes keeps one manifest per part (``predict_manifest.part-K-of-N.json``); the
last part to finish merges them (:func:`merge_parts`). No process group is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medseg_monai.config import BatchOptions
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
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("%s: ignoring unreadable manifest (%s)", path, err)
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def case_flags(labels: Mapping[str, Mapping[str, Any]], many_components: int = BatchOptions.many_components) -> list[str]:
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
        return {**self.header, "status": status, "updated": now(),
                "summary": _summary(records, len(self.header["part"]["indices"])), "cases": records}

    def save(self, status: str) -> None:
        if self.path is not None:
            atomic_write_text(self.path, json.dumps(self.to_dict(status), indent=1) + "\n")


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
        {"index": p["part"]["index"], "count": count, "started": p["started"], "updated": p["updated"],
         "device": p["device"], "cases": len(p["cases"])}
        for p in parts
    ]
    merged.update(status="finished", updated=now(), summary=_summary(records, merged["inputs_total"]), cases=records)
    path = output_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    logger.info("merged %d part manifests into %s", count, path)
    return merged

