"""The ``medseg`` command line: a thin layer that parses arguments into configs and calls the API.

Heavy imports (torch, MONAI) happen inside the commands so ``medseg --help`` answers at once.
Errors print one line naming the problem (file, value) and exit with status 2 (bad input) or 1
(some cases of a batch failed); any other exception is a bug, reported in one line as an internal
error (status 3) with its traceback in ``medseg-errors.log`` of the output folder (``--debug`` prints it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg_monai.config import BatchOptions, DataConfig, InferConfig, InputChecks, ModelConfig, TrainConfig
from medseg_monai.config.flags import BARE_FLAG, add_override_flag, add_setting_flags, settings_from_args
from medseg_monai.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CASES,
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    error_message,
    is_expected,
    write_traceback,
)

__all__ = ["main", "build_parser"]

logger = logging.getLogger("medseg_monai")


def _verbosity_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--debug and -q, accepted before and after the command (``default=SUPPRESS`` below it keeps the top-level value)."""
    parser.add_argument(
        "-v",
        "--verbose",
        "--debug",
        dest="verbose",
        action="store_true",
        default=default,
        help="debug logging, and tracebacks of errors on the console",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="warnings and errors only, no progress bars"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Medical-image segmentation on MONAI: synth, train, predict, export, evaluate, "
        "demo, run (real-data recipes), bundle (MONAI bundles).",
    )
    _verbosity_flags(parser, False)
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_flags(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    fmt = argparse.RawDescriptionHelpFormatter

    p = command(
        "synth",
        help="write a synthetic dataset",
        formatter_class=fmt,
        description="Write a synthetic organ + lesion dataset (labels 0/1/2).\n\nexample:\n  medseg synth --dims 3 --cases 20 --out data/synth3d",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--dims",
        type=int,
        choices=(2, 3),
        default=2,
        help="2: PNG slices (flat folder); 3: NIfTI volumes (imagesTr/labelsTr)",
    )
    p.add_argument("--cases", type=int, default=None, help="number of cases")
    p.add_argument("--shape", type=int, nargs="+", help="image size (H W) or volume size (X Y Z)")
    p.add_argument(
        "--modality", choices=("mr", "ct"), default="mr", help="3D intensities: MR-like floats or CT-like int16 HU"
    )
    p.add_argument("--seed", type=int, default=0)

    p = command(
        "train",
        help="train a model into a run folder",
        formatter_class=fmt,
        description="Train a segmentation network; the run folder gets config.json, checkpoints/{best,last}.pt,\n"
        "metrics.csv and curves.png.\n\nexample:\n  medseg train --data data/synth3d --network unet --out runs/synth3d --epochs 30",
    )
    p.add_argument("--data", help="dataset root (flat, images/+masks/, imagesTr/+labelsTr/) or a datalist .json")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--config", type=Path, help="start from this config.json (flags and --set override it)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints/last.pt")
    add_override_flag(p, '--set train.optimizer="sgd" --set model.options=\'{"channels":[8,16,32]}\'')
    add_setting_flags(p, DataConfig, "data", title="data (data.*)")
    add_setting_flags(p, ModelConfig, "model", title="network (model.*)")
    add_setting_flags(p, TrainConfig, "train", title="training (train.*; under torchrun, DistributedDataParallel)")

    p = command(
        "predict",
        help="write masks for images with a trained model",
        formatter_class=fmt,
        description="Write one mask per input, in the input's format and geometry, into --output.\n"
        "Inputs: a file, a folder, a DICOM series folder, a glob or a .csv/.txt list.\n"
        "Complete outputs are skipped unless --overwrite; failing cases are listed and the\n"
        "exit status is 1 when any case failed. predict_manifest.json in --output records\n"
        "every case (updated after each); --report adds an HTML QA page. Several processes\n"
        "split the cases with --num-parts/--part-id or under torchrun.\n\n"
        "example:\n  medseg predict --model runs/synth3d --input scans/ --output masks/ --report\n"
        "  medseg predict --model runs/synth3d --input 'scans/*.nrrd' --output masks/ --num-parts 4 --part-id 0\n"
        "  torchrun --nproc_per_node 2 -m medseg_monai.cli predict --model runs/synth3d --input scans.csv --output masks/",
    )
    p.add_argument(
        "--model",
        required=True,
        help="run folder (config.json + checkpoints/), a checkpoint file, or an exported model (.onnx, .ts)",
    )
    p.add_argument("--input", required=True, nargs="+", help="image file(s), folder, glob or list file")
    p.add_argument("--output", required=True, type=Path, help="output folder")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path")
    add_setting_flags(p, BatchOptions, "batch", title="batch")
    add_setting_flags(p, InputChecks, "checks", title="input checks (odd images: NaN voxels, 4D volumes, huge headers)")
    add_setting_flags(
        p,
        InferConfig,
        "infer",
        title="inference (infer.*; each flag changes the run's own setting, which it keeps otherwise)",
        show_defaults=False,
    )

    p = command(
        "export",
        help="write a trained model as one ONNX or TorchScript file",
        formatter_class=fmt,
        description="Write the network (float32, any batch of roi-sized windows) and the run's whole config\n"
        "(labels, geometry, normalisation, sliding window, TTA) into one file that\n"
        "'medseg predict --model FILE' and Predictor.from_artefact run end to end.\n"
        'ONNX needs: pip install "medseg-monai[export]".\n\n'
        "example:\n  medseg export --model runs/synth3d --out synth3d.onnx\n"
        "  medseg export --model runs/synth3d --checkpoint last --format torchscript --out synth3d.ts",
    )
    p.add_argument("--model", required=True, help="run folder (config.json + checkpoints/) or a checkpoint file")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path")
    p.add_argument("--format", choices=("onnx", "torchscript"), help="default: from the suffix of --out (.onnx, .ts)")
    # dest is not "out": an internal error's log goes into args.out as a folder
    p.add_argument(
        "--out",
        dest="artefact",
        metavar="FILE",
        required=True,
        type=Path,
        help="the file to write: NAME.onnx or NAME.ts",
    )

    p = command(
        "evaluate",
        help="score predicted masks against truth masks",
        formatter_class=fmt,
        description="Per-case, per-class Dice, IoU, precision, recall (and HD95/ASD with --surface);\n"
        "writes metrics_per_case.csv and metrics_summary.json.\n\nexample:\n  medseg evaluate --pred masks/ --truth data/synth3d --out eval/",
    )
    p.add_argument("--pred", required=True, type=Path, help="folder of predicted masks")
    p.add_argument("--truth", required=True, type=Path, help="folder of truth masks, or a dataset root")
    p.add_argument("--out", type=Path, help="where the CSV and summary go (default: --pred)")
    p.add_argument("--labels", type=int, nargs="+", help="label values to score (default: all nonzero in the truth)")
    p.add_argument("--surface", action="store_true", help="also HD95 and average surface distance")
    p.add_argument("--roi", type=Path, help="folder of region-of-interest masks (metrics inside them only)")

    p = command(
        "demo",
        help="synth -> train -> predict -> evaluate, 2D and 3D",
        formatter_class=fmt,
        description="Run the whole pipeline on built-in synthetic data (PNG slices and NIfTI volumes)\n"
        "and print validation Dice per class.\n\nexample:\n  medseg demo --out runs/demo",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (no accuracy target)")
    p.add_argument("--seed", type=int, default=0)

    p = command(
        "run",
        help="run a real-data recipe: train, predict, evaluate, report",
        formatter_class=fmt,
        description="Run a recipe of pipelines/ on the real datasets (../shared/data or $MEDSEG_DATA_DIR);\n"
        "the options after the recipe are the recipe's own (medseg run NAME --help lists them).\n\n"
        "example:\n  medseg run pipelines/msd_hippocampus.py --time-budget-min 30 --out runs/msd_hippocampus\n"
        "  medseg run drive_retina --network all --smoke",
    )
    p.add_argument(
        "recipe", help="pipelines/NAME.py or NAME (isbi2012_em, drive_retina, chaos_mr_liver2d, msd_hippocampus)"
    )
    p.add_argument("recipe_args", nargs=argparse.REMAINDER, help="the recipe's options, e.g. --network unet --smoke")

    p = command(
        "bundle",
        help="list, run or verify the MONAI bundles under bundles/",
        formatter_class=fmt,
        description="The MONAI bundles (bundles/NAME/configs/*.json) without typing python -m monai.bundle.\n"
        "'run' takes the config names (merged in order) and then any config id as --ID VALUE\n"
        "(JSON or Python literal values); a broken config is reported as one line naming the key.\n\n"
        "example:\n  medseg bundle list\n"
        "  medseg bundle run unet2d_png train --dataset_dir data/synth2d --epochs 5\n"
        "  medseg bundle run unet2d_png inference --dataset_dir scans/ --output_dir masks/\n"
        "  torchrun --nproc_per_node 2 -m medseg_monai.cli bundle run unet2d_png train multi_gpu_train --dataset_dir data/synth2d\n"
        "  medseg bundle verify",
    )
    p.add_argument("action", choices=("list", "run", "verify"), help="list bundles, run a config, or verify bundles")
    p.add_argument("bundle", nargs="?", help="bundle name under --root, or a bundle folder (verify: default all)")
    p.add_argument(
        "configs",
        nargs="*",
        default=[],
        metavar="CONFIG",
        help="run: config names, default train (e.g. train multi_gpu_train)",
    )
    p.add_argument("--root", type=Path, help="folder holding the bundles (default: ./bundles)")
    p.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="run: --ID VALUE pairs, e.g. --dataset_dir data --epochs 2"
    )
    return parser


def _train_config(args: argparse.Namespace):
    """The run's config: ``--config`` (or the defaults), then the flags, then ``--set``; data-dependent
    fields left unset are resolved from the data when training starts."""
    from medseg_monai.config import RunConfig, dataset_fields

    config = RunConfig.load(args.config) if args.config else RunConfig()
    changes: dict[str, Any] = {}
    if args.data:
        changes.update({f"data.{key}": value for key, value in dataset_fields(args.data).items()})
    for section in ("data", "model", "train"):
        changes.update({f"{section}.{key}": value for key, value in settings_from_args(args, section).items()})
    changes.update(dict(args.overrides))
    saved = args.out / "config.json"
    if args.resume and "train.epochs" not in changes and args.config is None and saved.is_file():
        changes["train.epochs"] = RunConfig.load(
            saved
        ).train.epochs  # resume to the run's own end unless --epochs says otherwise
    return config.override(changes)


def _batch_options(args: argparse.Namespace) -> BatchOptions:
    fields = {"progress": not args.quiet, **settings_from_args(args, "batch")}
    if fields.get("report") == BARE_FLAG:  # a bare --report: the page goes beside the masks
        from medseg_monai.batch.runner import REPORT_NAME

        fields["report"] = str(args.output / REPORT_NAME)
    return BatchOptions(**fields)


def cmd_synth(args: argparse.Namespace) -> int:
    from medseg_monai.data.synthetic import generate_dataset

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
    from medseg_monai.api import train

    config = _train_config(args)
    result = train(config, args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
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


def cmd_predict(args: argparse.Namespace) -> int:
    from medseg_monai.batch import MANIFEST_NAME, failures, resolve_shard, run_batch
    from medseg_monai.batch.case_outputs import STATISTICS_NAME
    from medseg_monai.batch.runner import wait_for_parts
    from medseg_monai.inference import Predictor

    options = _batch_options(args)
    shard = resolve_shard(options.num_parts, options.part_id)
    predictor = Predictor.from_run(
        args.model,
        checkpoint=args.checkpoint,
        infer=settings_from_args(args, "infer"),
        checks=InputChecks(**settings_from_args(args, "checks")),
    )
    inputs = args.input[0] if len(args.input) == 1 else args.input
    results = run_batch(predictor, inputs, args.output, options)
    counts = {status: sum(r.status == status for r in results) for status in ("written", "skipped", "failed")}
    part = f" [part {shard.index + 1}/{shard.count}]" if shard.sharded else ""
    print(
        f"{counts['written']} written, {counts['skipped']} skipped (already done), {counts['failed']} failed -> {args.output}{part}"
    )
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
    if counts["failed"] and shard.launcher == "torchrun" and options.manifest:
        wait_for_parts(args.output, shard)  # torchrun stops every worker once one exits non-zero
    if any(r.internal for r in results):
        return EXIT_INTERNAL_ERROR
    return EXIT_FAILED_CASES if counts["failed"] else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from medseg_monai.inference import Predictor
    from medseg_monai.models.artefact import ARTEFACT_SUFFIXES, artefact_format, export_artefact

    fmt = artefact_format(args.artefact, args.format)
    if str(args.model).lower().endswith(ARTEFACT_SUFFIXES):
        raise ConfigError(f"--model {args.model}: already an exported model; export takes a run folder or checkpoint")
    predictor = Predictor.from_run(args.model, checkpoint=args.checkpoint)
    result = export_artefact(predictor.network, predictor.config, args.artefact, fmt)
    print(
        f"wrote {result.path} ({result.format}, {result.bytes / 1e6:.1f} MB; logits within {result.max_abs_diff:.1e} "
        f"of the checkpoint's on a test window)"
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medseg_monai.evaluation import evaluate_folders

    result = evaluate_folders(
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
        print(
            f"{name}: validation Dice organ {run['dice_organ']:.4f}, lesion {run['dice_lesion']:.4f}{flag}  [{run['epochs']} epochs, {run['seconds']:.0f} s]"
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("medseg_monai").setLevel(
        level
    )  # also where logging was configured before (a bundle's logging.conf)
    if not args.verbose:  # ignite's engines announce every epoch start/stop at INFO
        logging.getLogger("ignite").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"medseg {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.verbose:
            logger.error("traceback", exc_info=True)
        if is_expected(err):
            print(f"medseg {args.command}: error: {error_message(err)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        where = _report_internal_error(err, args)
        print(
            f"medseg {args.command}: internal error (a bug in medseg-monai, not a problem of the input): "
            f"{type(err).__name__}: {error_message(err)}; traceback in {where}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _report_internal_error(err: BaseException, args: argparse.Namespace) -> str:
    """Write the traceback into the command's output folder (else the temporary folder); where it went."""
    import tempfile

    context = f"medseg {' '.join(sys.argv[1:]) or args.command}"
    for folder in (getattr(args, "output", None), getattr(args, "out", None), Path(tempfile.gettempdir())):
        if folder is None:
            continue
        try:
            return str(write_traceback(err, folder, context))
        except OSError:
            continue
    return "(nowhere: no writable folder)"


if __name__ == "__main__":
    sys.exit(main())
