"""Reproducible real-data recipes: train, predict and evaluate on the datasets of ``../shared/data``.

    from medseg_monai.recipes import RECIPES, run_recipe
    summary = run_recipe("msd_hippocampus", "unet", out="runs/msd_hippocampus", time_budget_min=30)
    print(summary["headline"])          # {"name": "mean Dice", "value": ..., "target": 0.87, ...}

The same from the shell: ``medseg run pipelines/msd_hippocampus.py --time-budget-min 30`` or
``python pipelines/msd_hippocampus.py``. ``docs/results.md`` is generated from the run folders by
``python pipelines/make_results_table.py``.
"""

from __future__ import annotations

from medseg_monai.recipes.catalog import EPOCH_CAP, RECIPES, get_recipe
from medseg_monai.recipes.main import build_recipe_parser, recipe_main, recipe_name
from medseg_monai.recipes.results import collect_summaries, publish_summaries, write_results_table
from medseg_monai.recipes.runner import run_recipe
from medseg_monai.recipes.schedule import fit_schedule
from medseg_monai.recipes.spec import DATA_DIR_ENV, Recipe, SplitSpec, default_data_root, resolve_data_root, split_cases

__all__ = [
    "DATA_DIR_ENV",
    "EPOCH_CAP",
    "RECIPES",
    "Recipe",
    "SplitSpec",
    "build_recipe_parser",
    "collect_summaries",
    "default_data_root",
    "fit_schedule",
    "get_recipe",
    "publish_summaries",
    "recipe_main",
    "recipe_name",
    "resolve_data_root",
    "run_recipe",
    "split_cases",
    "write_results_table",
]
