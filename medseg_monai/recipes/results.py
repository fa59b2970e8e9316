"""``docs/results.md`` from the ``summary.json`` files of recipe run folders (never typed by hand).

The summaries of full runs are also kept in ``docs/results/`` (a few kB each; the run folders with
their checkpoints and predictions are not committed), so the page regenerates from the repository.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from medseg_monai.recipes.catalog import RECIPES
from medseg_monai.reporting.results import render_results
from medseg_monai.utils import atomic_write_text

__all__ = ["collect_summaries", "publish_summaries", "write_results_table"]

logger = logging.getLogger(__name__)

_KIND_ORDER = {"full": 0, "trial": 1, "smoke": 2}


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
                summary = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                logger.warning("%s: unreadable summary skipped (%s)", path, err)
                continue
            if isinstance(summary, dict) and {"recipe", "network", "headline", "metrics"} <= set(summary):
                found[_summary_key(summary)] = summary
    order = {name: i for i, name in enumerate(RECIPES)}
    networks = {name: i for i, name in enumerate(("unet", "unetpp", "deeplabv3"))}
    return sorted(
        found.values(),
        key=lambda s: (
            order.get(s["recipe"], len(order)),
            s["recipe"],
            _KIND_ORDER.get(s.get("kind"), 3),
            networks.get(s["network"], 9),
            s["network"],
        ),
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


def write_results_table(
    roots: Iterable[str | Path], out: str | Path = "docs/results.md", archive: str | Path | None = None
) -> Path:
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
