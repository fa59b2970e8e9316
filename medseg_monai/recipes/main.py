"""Command line of a recipe, shared by ``python pipelines/<name>.py`` and ``medseg run <name>``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from medseg_monai.config.flags import add_override_flag
from medseg_monai.errors import EXIT_BAD_INPUT, EXIT_OK, ConfigError
from medseg_monai.recipes.catalog import RECIPES
from medseg_monai.recipes.spec import DATA_DIR_ENV

__all__ = ["build_recipe_parser", "recipe_main", "recipe_name"]


def recipe_name(spec: str) -> str:
    """Recipe name of ``pipelines/<name>.py`` or ``<name>``; ``ValueError`` naming the known recipes."""
    name = Path(spec).stem if spec.endswith(".py") or "/" in spec or "\\" in spec else spec
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {spec!r}; known: {', '.join(sorted(RECIPES))}")
    return name


def build_recipe_parser(name: str, prog: str | None = None) -> argparse.ArgumentParser:
    recipe = RECIPES[name]
    networks = recipe.networks + ("all",)
    target = f"; target {recipe.headline} >= {recipe.target}" if recipe.target is not None else ""
    parser = argparse.ArgumentParser(
        prog=prog or f"medseg run {name}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"{recipe.description}{target}.\n\n"
        "Train within a wall-clock budget, predict the validation cases, score them\n"
        f"(Dice, IoU, precision, recall, HD95, ASD) and write OUT/<network>/summary.json.\n\n"
        f"example:\n  medseg run pipelines/{name}.py --network {networks[-1]} --time-budget-min 30 --out runs/{name}",
    )
    parser.add_argument(
        "--network", choices=networks, default=recipe.networks[0], help="network to train (default: %(default)s)"
    )
    parser.add_argument(
        "-o",
        "--output",
        "--out",
        dest="out",
        type=Path,
        default=Path("runs") / name,
        help="parent of the run folders (default: %(default)s)",
    )
    parser.add_argument(
        "--time-budget-min",
        type=float,
        default=30.0,
        help="wall-clock training budget per network (default: %(default)s)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a couple of minutes on a few cases: checks the wiring, numbers mean nothing",
    )
    parser.add_argument(
        "--data-root", type=Path, help=f"folder holding {recipe.dataset}/ (default: ${DATA_DIR_ENV} or ../shared/data)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split, weights and sampling (default: %(default)s)"
    )
    if "deeplabv3" in recipe.networks:
        parser.add_argument(
            "--pretrained",
            help="deeplabv3: local backbone weights file (never downloaded); enables the two-stage schedule",
        )
    parser.add_argument("--epochs", type=int, help="fixed number of epochs instead of fitting them to the budget")
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="checkpoint scored on the validation cases (default: %(default)s)",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="keep the trained run in OUT/<network> and only predict and score its validation cases again "
        "(with the recipe's current inference settings and any --set infer.* overrides)",
    )
    add_override_flag(parser, "--set train.learning_rate=0.001")
    return parser


def _print_summary(summary: dict) -> None:
    headline = summary["headline"]
    target = ""
    if headline["target"] is not None:
        target = (
            "  (target met)"
            if headline["met"]
            else f"  (target {headline['target']}, short by {headline['target'] - (headline['value'] or 0):.4f})"
        )
    value = headline["value"]
    shown = value if value is None else f"{value:.4f}"
    print(
        f"{summary['recipe']} / {summary['network']}: {headline['name']} {shown}{target}"
        f"  [{summary['epochs_run']} epochs, {summary['train_seconds']:.0f} s training, {summary['kind']}]"
    )
    for label, metrics in summary["metrics"].items():
        parts = [f"{m} {s['mean']:.4f}" for m, s in metrics.items() if s["mean"] is not None]
        print(f"  {label}: " + ", ".join(parts))
    print(f"  run folder: {summary['run_dir']}")


def recipe_main(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv``, run the recipe, print a short report; exit status 0, or 2 for bad input."""
    from medseg_monai.errors import error_message, is_expected
    from medseg_monai.recipes.runner import run_recipe

    args = build_recipe_parser(name, prog).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("ignite").setLevel(logging.WARNING)
    try:
        result = run_recipe(
            name,
            args.network,
            args.out,
            args.time_budget_min,
            args.smoke,
            args.data_root,
            args.seed,
            pretrained=getattr(args, "pretrained", None),
            epochs=args.epochs,
            checkpoint=args.checkpoint,
            overrides=dict(args.overrides),
            score_only=args.score_only,
        )
    except Exception as err:
        if not is_expected(err):
            raise  # a bug: ``medseg run`` reports it as an internal error
        print(f"{prog or 'medseg run ' + name}: error: {error_message(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for summary in result["runs"].values() if "runs" in result else [result]:
        _print_summary(summary)
    return EXIT_OK
