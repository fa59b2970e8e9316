"""``--score-only``: predict and score a finished run's validation cases again, its training kept."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medseg_monai.errors import ConfigError
from medseg_monai.recipes.scoring import predict_and_score
from medseg_monai.recipes.spec import Recipe
from medseg_monai.recipes.summary import runtime_versions, write_summary

__all__ = ["rescore_run"]

logger = logging.getLogger(__name__)


def _finished_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """The summary and the validation cases of the trained run in ``run_dir``."""
    summary_path, datalist_path = run_dir / "summary.json", run_dir / "datalist.json"
    for path in (summary_path, datalist_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no finished run to score; train it first (without --score-only)")
    previous = json.loads(summary_path.read_text(encoding="utf-8"))
    return previous, json.loads(datalist_path.read_text(encoding="utf-8"))["validation"]


def _infer_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The overrides, which must all be ``infer.*`` ones."""
    infer_overrides = {k: v for k, v in (overrides or {}).items() if k.startswith("infer.")}
    if len(infer_overrides) != len(overrides or {}):
        raise ConfigError(
            f"--score-only takes infer.* overrides only, got {sorted(set(overrides or {}) - set(infer_overrides))}"
        )
    return infer_overrides


def rescore_run(
    recipe: Recipe,
    network: str,
    run_dir: Path,
    root: Path,
    *,
    smoke: bool,
    checkpoint: str,
    overrides: Mapping[str, Any] | None,
) -> dict:
    """Predict and score a finished run's validation cases again; training fields of its summary are kept."""
    previous, val_items = _finished_run(run_dir)
    infer_overrides = _infer_overrides(overrides)
    # the recipe's current inference settings (with the overrides), handed over as changes to the run's own
    infer = recipe.config(network, smoke=smoke).override(infer_overrides).to_dict()["infer"]
    dataset_dir = root / recipe.dataset
    summary = predict_and_score(recipe, network, run_dir, dataset_dir, val_items, checkpoint, infer=infer)
    scoring_keys = set(summary)
    summary = {**previous, **summary}
    summary["rescored"] = {
        "previous_headline": previous.get("headline"),
        "command": previous.get("command", "")
        + " --score-only"
        + "".join(f" --set {k}={json.dumps(v)}" for k, v in infer_overrides.items()),
        "fields": sorted(scoring_keys),
        "versions": runtime_versions(),  # the top-level versions stay those of the training run
    }
    write_summary(run_dir / "summary.json", summary)
    headline = summary["headline"]
    logger.info(
        "%s/%s scored again: %s %.4f (was %.4f)",
        recipe.name,
        network,
        headline["name"],
        headline["value"],
        (previous.get("headline") or {}).get("value") or math.nan,
    )
    return summary
