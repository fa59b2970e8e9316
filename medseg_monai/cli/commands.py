"""The ``medseg`` commands: each parses its arguments into settings and calls :mod:`medseg_monai.api`
(heavy imports inside the commands, so ``medseg --help`` answers at once)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg_monai.cli.inputs import check_predict_inputs, check_train_inputs, prepare_run_folder
from medseg_monai.config import BatchOptions, InputChecks
from medseg_monai.config.flags import BARE_FLAG, settings_from_args
from medseg_monai.errors import EXIT_FAILED_CASES, EXIT_INTERNAL_ERROR, EXIT_OK, ConfigError

__all__ = ["COMMANDS", "batch_options", "train_config"]


def train_config(args: argparse.Namespace):
    """The run's config: ``--config`` (or the defaults), then the flags, then ``--set``; data-dependent
    fields left unset are resolved from the data when training starts."""
    from medseg_monai.config import RunConfig, dataset_fields

    config = RunConfig.load(args.config) if args.config else RunConfig()
    changes: dict[str, Any] = {}
    if args.data:
        changes.update({f"data.{key}": value for key, value in dataset_fields(args.data).items()})
    for section in ("data", "model", "train", "runtime"):
        changes.update({f"{section}.{key}": value for key, value in settings_from_args(args, section).items()})
    changes.update(dict(args.overrides))
    saved = args.out / "config.json"
    if args.resume and "train.epochs" not in changes and args.config is None and saved.is_file():
        # resume to the run's own end unless --epochs says otherwise
        changes["train.epochs"] = RunConfig.load(saved).train.epochs
    return config.override(changes)


def batch_options(args: argparse.Namespace) -> BatchOptions:
    fields = {"progress": not args.quiet, **settings_from_args(args, "batch")}
    if fields.get("report") == BARE_FLAG:  # a bare --report: the page goes beside the masks
        from medseg_monai.api import REPORT_NAME

        fields["report"] = str(args.output / REPORT_NAME)
    return BatchOptions(**fields)


def cmd_synth(args: argparse.Namespace) -> int:
    from medseg_monai.api import generate_dataset

    kwargs = {"modality": args.modality} if args.dims == 3 else {}
    out = generate_dataset(
        args.out,
        dims=args.dims,
        n_cases=args.cases,
        shape=tuple(args.shape) if args.shape else None,
        seed=args.seed,
        **kwargs,
    )
    print(f"wrote synthetic {args.dims}D dataset to {out}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    config = train_config(args)
    check_train_inputs(args, config.data.data_dir, config.data.datalist)
    main_process = int(os.environ.get("RANK", "0")) == 0
    prepare_run_folder(args, main_process)

    from medseg_monai.api import train

    result = train(config, args.out, resume=args.resume)
    if not main_process:  # torchrun: rank 0 reports
        return EXIT_OK
    print(
        f"best validation mean Dice {result.best_metric:.4f} at epoch {result.best_epoch} ({result.epochs_run} epochs)"
    )
    last = result.history[-1] if result.history else {}
    for key, value in last.items():
        if key.startswith("val_dice_"):
            print(f"  last-epoch Dice {key.removeprefix('val_dice_')}: {value:.4f}")
    print(f"run folder: {result.run_dir}")
    return EXIT_OK


def _predict_summary(results: list, shard: Any, args: argparse.Namespace, options: BatchOptions) -> None:
    """Print the batch's counts, failures and the files it wrote."""
    from medseg_monai.api import MANIFEST_NAME, STATISTICS_NAME, failures

    counts = {status: sum(r.status == status for r in results) for status in ("written", "skipped", "failed")}
    part = f" [part {shard.index + 1}/{shard.count}]" if shard.sharded else ""
    done = f"{counts['written']} written, {counts['skipped']} skipped (already done), {counts['failed']} failed"
    print(f"{done} -> {args.output}{part}")
    for failure in failures(results):
        print(f"FAILED {failure.error}")
    if options.manifest:
        merged = args.output / MANIFEST_NAME
        print(
            f"manifest: {args.output / shard.manifest_name}"
            + (f" (merged into {merged.name} when all parts are done)" if shard.sharded else "")
        )
    if options.report and Path(options.report).exists():
        print(f"report: {options.report}")
    if options.statistics and (args.output / STATISTICS_NAME).exists():
        print(f"statistics: {args.output / STATISTICS_NAME}")


def cmd_predict(args: argparse.Namespace) -> int:
    check_predict_inputs(args)
    from medseg_monai import api

    options = batch_options(args)
    shard = api.resolve_shard(options.num_parts, options.part_id)
    predictor = api.load_predictor(
        args.model,
        checkpoint=args.checkpoint,
        infer=settings_from_args(args, "infer"),
        runtime=settings_from_args(args, "runtime"),
        checks=InputChecks(**settings_from_args(args, "checks")),
    )
    inputs = args.input[0] if len(args.input) == 1 else args.input
    results = api.predict(predictor, inputs, args.output, options=options, shard=shard)
    _predict_summary(results, shard, args, options)
    failed = any(not r.ok for r in results)
    if failed and shard.launcher == "torchrun" and options.manifest:
        api.wait_for_parts(args.output, shard)  # torchrun stops every worker once one exits non-zero
    if any(r.internal for r in results):
        return EXIT_INTERNAL_ERROR
    return EXIT_FAILED_CASES if failed else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from medseg_monai import api

    result = api.export(args.model, args.artefact, checkpoint=args.checkpoint, fmt=args.format)
    print(
        f"wrote {result.path} ({result.format}, {result.bytes / 1e6:.1f} MB; logits within {result.max_abs_diff:.1e} "
        f"of the checkpoint's on a test window)"
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medseg_monai.api import evaluate

    result = evaluate(
        args.pred,
        args.truth,
        output_dir=args.out or args.pred,
        labels=args.labels,
        surface=args.surface,
        roi_dir=args.roi,
    )
    summary = result.summary
    print(f"{summary['cases']} cases, labels {summary['labels']}")
    for name, metrics in summary["per_label"].items():
        parts = [f"{m} {s['mean']:.4f}" for m, s in metrics.items() if s["mean"] is not None]
        print(f"  label {name}: " + ", ".join(parts))
    if summary["missing_predictions"]:
        print(f"missing predictions: {', '.join(summary['missing_predictions'][:10])}")
    print(f"per-case metrics: {result.per_case_csv}")
    for name, error in summary["errors"].items():
        print(f"FAILED {error if name in error else f'{name}: {error}'}")
    return EXIT_FAILED_CASES if summary["errors"] else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from medseg_monai.demo import run_demo

    summary = run_demo(args.out, quick=args.quick, seed=args.seed)
    ok = True
    for name, run in summary["runs"].items():
        flag = (
            ""
            if args.quick
            else ("  (target met)" if run["lesion_target_met"] else f"  (below target {summary['target_lesion_dice']})")
        )
        dice = f"validation Dice organ {run['dice_organ']:.4f}, lesion {run['dice_lesion']:.4f}{flag}"
        print(f"{name}: {dice}  [{run['epochs']} epochs, {run['seconds']:.0f} s]")
        ok &= run["lesion_target_met"] and not run["failed_cases"]
    print(f"outputs: {args.out} (summary.json, */predictions.png, */curves.png, */metrics.csv)")
    return EXIT_OK if ok or args.quick else EXIT_FAILED_CASES


def cmd_run(args: argparse.Namespace) -> int:
    from medseg_monai.recipes import recipe_main, recipe_name

    return recipe_main(recipe_name(args.recipe), args.recipe_args, prog=f"medseg run {args.recipe}")


def _parse_bundle_overrides(tokens: Sequence[str]) -> dict[str, Any]:
    import ast

    overrides: dict[str, Any] = {}
    items = list(tokens)
    while items:
        token = items.pop(0)
        if not token.startswith("--") or len(token) < 3:
            raise ConfigError(f"bundle overrides are --ID VALUE pairs; got {token!r}")
        key, sep, raw = token[2:].partition("=")
        if not sep:
            if not items:
                raise ConfigError(f"override --{key} needs a value")
            raw = items.pop(0)
        for parse in (json.loads, ast.literal_eval):
            try:
                overrides[key] = parse(raw)
                break
            except (ValueError, SyntaxError):
                continue
        else:
            overrides[key] = raw
    return overrides


def cmd_bundle(args: argparse.Namespace) -> int:
    from medseg_monai import bundle as mb

    if args.action == "list":
        found = mb.find_bundles(args.root)
        for path in found:
            meta = json.loads((path / "configs" / "metadata.json").read_text(encoding="utf-8"))
            print(f"{path.name:16s} {meta.get('version', '?'):8s} {meta.get('task', '')}")
        if not found:
            print(f"no bundles under {args.root or mb.bundle_root_dir()}")
        return EXIT_OK
    if args.action == "verify":
        paths = [mb.resolve_bundle(args.bundle, args.root)] if args.bundle else mb.find_bundles(args.root)
        if not paths:
            raise FileNotFoundError(f"no bundles under {args.root or mb.bundle_root_dir()}")
        failed = False
        for path in paths:
            problems = mb.verify_bundle(path)
            for problem in problems:
                print(problem)
            print(f"{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
            failed |= bool(problems)
        return EXIT_FAILED_CASES if failed else EXIT_OK
    if not args.bundle:
        raise ConfigError("bundle run needs a bundle name, e.g. medseg bundle run unet2d_png train --dataset_dir DIR")
    overrides = _parse_bundle_overrides(args.overrides)
    root = (
        Path(overrides.pop("root")) if "root" in overrides and args.root is None else args.root
    )  # --root after the configs
    path = mb.resolve_bundle(args.bundle, root)
    mb.run_bundle(path, args.configs or ["train"], overrides)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{path.name}: {' + '.join(args.configs or ['train'])} finished")
    return EXIT_OK


COMMANDS = {
    "synth": cmd_synth,
    "train": cmd_train,
    "predict": cmd_predict,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
    "run": cmd_run,
    "bundle": cmd_bundle,
}
