"""``docs/results.md`` from the ``summary.json`` files of recipe run folders (never typed by hand).

The summaries of full runs are also kept in ``docs/results/`` (a few kB each; the run folders with
their checkpoints and predictions are not committed), so the page regenerates from the repository.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from medseg_monai.recipes.catalog import RECIPES
from medseg_monai.utils import atomic_write_text

__all__ = ["collect_summaries", "publish_summaries", "render_results", "write_results_table"]

logger = logging.getLogger(__name__)

_KIND_ORDER = {"full": 0, "trial": 1, "smoke": 2}
_KIND_NOTE = {
    "full": "full",
    "trial": "trial (short budget)",
    "smoke": "smoke (wiring check, not a result)",
}


def _summary_key(summary: dict) -> tuple[str, str, str]:
    return summary["recipe"], summary["network"], str(summary.get("kind", "?"))


def collect_summaries(roots: Iterable[str | Path]) -> list[dict]:
    """Recipe summaries found under ``roots`` (``summary.json`` or archived ``*.json`` files naming a
    recipe and a network), one per recipe, network and kind of run: a later root (or a later file of
    the same root) replaces an earlier one."""
    found: dict[tuple[str, str, str], dict] = {}
    for root in map(Path, roots):
        if not root.exists():
            logger.warning("%s: not found, skipped", root)
            continue
        paths = [root] if root.is_file() else sorted({*root.rglob("summary.json"), *root.glob("*.json")})
        for path in paths:
            try:
                summary = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                logger.warning("%s: unreadable summary skipped (%s)", path, err)
                continue
            if isinstance(summary, dict) and {"recipe", "network", "headline", "metrics"} <= set(summary):
                found[_summary_key(summary)] = summary
    order = {name: i for i, name in enumerate(RECIPES)}
    networks = {name: i for i, name in enumerate(("unet", "unetpp", "deeplabv3"))}
    return sorted(
        found.values(),
        key=lambda s: (order.get(s["recipe"], len(order)), s["recipe"], _KIND_ORDER.get(s.get("kind"), 3),
                       networks.get(s["network"], 9), s["network"]),
    )


def publish_summaries(summaries: Iterable[dict], archive: str | Path) -> list[Path]:
    """Copy the summaries of full runs into ``archive`` as ``<recipe>.<network>.json`` (replacing the
    previous one), so the results page can be regenerated after the run folders are gone."""
    written = []
    for summary in summaries:
        if summary.get("kind") == "full":
            path = Path(archive) / f"{summary['recipe']}.{summary['network']}.json"
            written.append(atomic_write_text(path, json.dumps(summary, indent=2) + "\n"))
    return written


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _stat(summary: dict, label: str, metric: str, stat: str = "mean") -> float | None:
    return ((summary.get("metrics", {}).get(label) or {}).get(metric) or {}).get(stat)


def _run_cell(summary: dict, notes: Sequence[str], long: bool = False) -> str:
    """The kind of run, with the number of its note (``notes`` holds each distinct ``note`` once)."""
    kind = summary.get("kind", "?")
    cell = _KIND_NOTE.get(kind, kind) if long else kind
    return f"{cell} [{notes.index(summary['note']) + 1}]" if summary.get("note") in notes else cell


def _main_table(summaries: Sequence[dict], notes: Sequence[str]) -> list[str]:
    lines = [
        "| dataset | network | run | budget (min) | epochs | metric | value | target | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        h = s["headline"]
        target = "none set" if h.get("target") is None else f"{h['target']} ({'met' if h.get('met') else 'not met'})"
        budget = s.get("time_budget_min")
        lines.append(
            f"| {s['dataset']} | {s['network']} | {_run_cell(s, notes, long=True)} | {'n/a' if budget is None else f'{budget:g}'} "
            f"| {s.get('epochs_run', '?')} | {h['name']} | {_fmt(h.get('value'))} | {target} | `{s.get('command', '')}` |"
        )
    return lines


def _detail_table(summaries: Sequence[dict], notes: Sequence[str]) -> list[str]:
    unit = "mm" if summaries[0].get("distance_unit") == "mm" else "pixels"
    roi = summaries[0].get("roi")
    inside = f" (inside `{roi}/`)" if roi else ""
    lines = [
        f"Per class, mean (median) over validation cases{inside}; pooled = from voxel counts summed over the cases; "
        f"HD95 and ASD in {unit}.",
        "",
        "| network | run | class | Dice | IoU | precision | recall | accuracy | HD95 | ASD | pooled Dice | cases |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        for label in s["metrics"]:
            cells = [f"{_fmt(_stat(s, label, 'dice'))} ({_fmt(_stat(s, label, 'dice', 'median'))})"]
            cells += [_fmt(_stat(s, label, m)) for m in ("iou", "precision", "recall", "accuracy")]
            cells += [_fmt(_stat(s, label, m), 2) for m in ("hd95", "asd")]
            cells.append(_fmt((s.get("pooled", {}).get(label) or {}).get("dice")))
            cells.append(_fmt(_stat(s, label, "dice", "n")))
            lines.append(f"| {s['network']} | {_run_cell(s, notes)} | {label} | " + " | ".join(cells) + " |")
    patients = [s for s in summaries if s.get("pooled_per_patient")]
    if patients:
        lines += ["", "Per-patient pooled Dice (all validation slices of a patient as one volume):", "",
                  "| network | run | class | patients | mean |", "|---|---|---|---|---|"]
        for s in patients:
            for label, groups in s["pooled_per_patient"].items():
                each = ", ".join(f"P{g} {_fmt(v, 3)}" for g, v in groups.items() if g != "mean")
                lines.append(f"| {s['network']} | {_run_cell(s, notes)} | {label} | {each} | {_fmt(groups.get('mean'))} |")
    return lines


def render_results(summaries: Sequence[dict]) -> str:
    """The Markdown page: one headline row per run, then per-dataset class tables."""
    lines = [
        "# Results on real data",
        "",
        "Generated by `python pipelines/make_results_table.py` from the `summary.json` of each run folder, kept in",
        "`docs/results/`; do not edit by hand.",
        "Every value is measured on the recipe's own validation split of `../shared/data` (the official or patient-level",
        "test cases are not in that folder). Runs marked *smoke* only check that a recipe runs end to end (a few cases,",
        "a few steps) and *trial* runs had a budget under 30 minutes: neither is a result of the 30-minute recipes.",
        "",
    ]
    if not summaries:
        return "\n".join(lines + ["No recipe runs found.", ""])
    notes = list(dict.fromkeys(s["note"] for s in summaries if s.get("note")))
    lines += ["## Summary", ""] + _main_table(summaries, notes) + [""]
    lines += [f"[{i}] {note}" + ("  " if i < len(notes) else "") for i, note in enumerate(notes, start=1)] + ([""] if notes else [])
    by_dataset: dict[str, list[dict]] = {}
    for s in summaries:
        by_dataset.setdefault(s["dataset"], []).append(s)
    for dataset, group in by_dataset.items():
        lines += [f"## {dataset}", "", group[0].get("description", ""), ""] + _detail_table(group, notes) + [""]
    recorded = [s for s in summaries if s.get("versions")]
    if recorded:
        last = recorded[-1]
        lines += [f"Environment of the last run listed that records one ({last['dataset']}, {last['network']}): "
                  + ", ".join(f"{k} {v}" for k, v in last["versions"].items()) + ".", ""]
    return "\n".join(lines)


def write_results_table(roots: Iterable[str | Path], out: str | Path = "docs/results.md", archive: str | Path | None = None) -> Path:
    """Write the Markdown page of the summaries under ``roots`` to ``out``.

    With ``archive``, the full runs found under ``roots`` are first published there and the page
    covers the whole archive, the runs under ``roots`` replacing their archived counterparts.
    """
    roots = [Path(root) for root in roots]
    summaries = collect_summaries(roots if archive is None else [Path(archive), *roots])
    if archive is not None:  # archived summaries not replaced by a run are written back unchanged
        published = publish_summaries(summaries, archive)
        logger.info("%d full-run summaries published to %s", len(published), archive)
    logger.info("%d run summaries -> %s", len(summaries), out)
    return atomic_write_text(Path(out), render_results(summaries))
