"""The ``medseg`` argument parser: one function per command; the settings' flags are generated from their
dataclass fields (:mod:`medseg_monai.config.flags`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medseg_monai.config import (
    BatchOptions,
    DataConfig,
    InferConfig,
    InputChecks,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
)
from medseg_monai.config.flags import add_override_flag, add_setting_flags
from medseg_monai.utils import PROGRESS_MODES

__all__ = ["EXIT_STATUS_HELP", "build_parser"]

#: the exit statuses of every command (``medseg --help``'s epilog and docs/cli.md)
EXIT_STATUS_HELP = """exit status:
  0    everything succeeded
  1    the command ran but part of it failed (a case of a predict batch or of evaluate, a bundle of
       bundle verify, the demo's accuracy target)
  2    bad arguments or input: one line on standard error names the file or value (--debug: traceback)
  3    internal error, a bug of medseg-monai: one line, the traceback in medseg-errors.log of the
       output folder
  130  interrupted (Ctrl-C)"""


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medseg-monai")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written, and every option's default in its help where it has one to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default == argparse.SUPPRESS or default == []
        if hidden or "(default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _verbosity_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--debug and -q, accepted before and after the command (``default=SUPPRESS`` below it keeps the
    top-level value)."""
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
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="console: warnings, errors and the final summary only (log files keep every line)",
    )
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default=default if default is not False else None,
        help="progress bars: auto draws them on a terminal and writes one line per epoch or case elsewhere "
        "(default: auto; off with -q)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``medseg`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        formatter_class=HelpFormatter,
        description="Medical-image segmentation on MONAI: synth, train, predict, export, evaluate, "
        "demo, run (real-data recipes), bundle (MONAI bundles).",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"medseg-monai {_installed_version()}")
    _verbosity_flags(parser, False)
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_flags(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_synth, _add_train, _add_predict, _add_export, _add_evaluate, _add_demo, _add_run, _add_bundle):
        add(sub, common)
    return parser


def _add_synth(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg synth``."""
    p = sub.add_parser(
        "synth",
        parents=[common],
        formatter_class=HelpFormatter,
        help="write a synthetic dataset",
        description="Write a synthetic organ + lesion dataset (labels 0/1/2).\n\n"
        "example:\n  medseg synth --dims 3 --cases 20 -o data/synth3d",
    )
    p.add_argument("-o", "--output", "--out", dest="out", required=True, type=Path, help="output folder")
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


def _add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg train``."""
    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=HelpFormatter,
        help="train a model into a run folder",
        description="Train a segmentation network; the run folder gets config.json, checkpoints/{best,last}.pt,\n"
        "metrics.csv and curves.png.\n\n"
        "example:\n  medseg train --data data/synth3d --network unet -o runs/synth3d --epochs 30",
    )
    p.add_argument("--data", help="dataset root (flat, images/+masks/, imagesTr/+labelsTr/) or a datalist .json")
    p.add_argument("-o", "--output", "--out", dest="out", required=True, type=Path, help="run folder")
    p.add_argument("--config", type=Path, help="start from this config.json (flags and --set override it)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints/last.pt")
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="train a new run in a folder that holds one (its checkpoints/ and tensorboard/ are removed first)",
    )
    add_override_flag(p, '--set train.optimizer="sgd" --set model.options=\'{"channels":[8,16,32]}\'')
    add_setting_flags(p, DataConfig, "data", title="data (data.*)")
    add_setting_flags(p, ModelConfig, "model", title="network (model.*)")
    add_setting_flags(p, TrainConfig, "train", title="training (train.*; under torchrun, DistributedDataParallel)")
    add_setting_flags(p, RuntimeConfig, "runtime", title="runtime (runtime.*; prediction starts from the run's)")


def _add_predict(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg predict``."""
    p = sub.add_parser(
        "predict",
        parents=[common],
        formatter_class=HelpFormatter,
        help="write masks for images with a trained model",
        description="Write one mask per input, in the input's format and geometry, into --output.\n"
        "Inputs: a file, a folder, a DICOM series folder, a glob or a .csv/.txt list.\n"
        "Complete outputs are skipped unless --overwrite; failing cases are listed and the\n"
        "exit status is 1 when any case failed. predict_manifest.json in --output records\n"
        "every case (updated after each); --report adds an HTML QA page. Several processes\n"
        "split the cases with --num-parts/--part-id or under torchrun.\n\n"
        "example:\n  medseg predict --model runs/synth3d -i scans/ -o masks/ --report\n"
        "  medseg predict --model runs/synth3d --input 'scans/*.nrrd' --output masks/ --num-parts 4 --part-id 0\n"
        "  torchrun --nproc_per_node 2 -m medseg_monai.cli predict --model runs/synth3d --input scans.csv "
        "--output masks/",
    )
    p.add_argument(
        "--model",
        required=True,
        help="run folder (config.json + checkpoints/), a checkpoint file, or an exported model (.onnx, .ts)",
    )
    p.add_argument("-i", "--input", required=True, nargs="+", help="image file(s), folder, glob or list file")
    p.add_argument("-o", "--output", "--out", dest="output", required=True, type=Path, help="output folder")
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
    add_setting_flags(
        p, RuntimeConfig, "runtime", title="runtime (runtime.*; as the run's unless given)", show_defaults=False
    )


def _add_export(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg export``."""
    p = sub.add_parser(
        "export",
        parents=[common],
        formatter_class=HelpFormatter,
        help="write a trained model as one ONNX or TorchScript file",
        description="Write the network (float32, any batch of roi-sized windows) and the run's whole config\n"
        "(labels, geometry, normalisation, sliding window, TTA) into one file that\n"
        "'medseg predict --model FILE' and Predictor.from_artefact run end to end.\n"
        'ONNX needs: pip install "medseg-monai[export]".\n\n'
        "example:\n  medseg export --model runs/synth3d -o synth3d.onnx\n"
        "  medseg export --model runs/synth3d --checkpoint last --output-format torchscript -o synth3d.ts",
    )
    p.add_argument("--model", required=True, help="run folder (config.json + checkpoints/) or a checkpoint file")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path")
    p.add_argument(
        "--output-format",
        "--format",
        dest="format",
        choices=("onnx", "torchscript"),
        help="default: from the suffix of --output (.onnx, .ts)",
    )
    # dest is not "out": an internal error's log goes into args.out as a folder
    p.add_argument(
        "-o",
        "--output",
        "--out",
        dest="artefact",
        metavar="FILE",
        required=True,
        type=Path,
        help="the file to write: NAME.onnx or NAME.ts",
    )


def _add_evaluate(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg evaluate``."""
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=HelpFormatter,
        help="score predicted masks against truth masks",
        description="Per-case, per-class Dice, IoU, precision, recall (and HD95/ASD with --surface);\n"
        "writes metrics_per_case.csv and metrics_summary.json.\n\n"
        "example:\n  medseg evaluate --pred masks/ --truth data/synth3d -o eval/",
    )
    p.add_argument("--pred", required=True, type=Path, help="folder of predicted masks")
    p.add_argument("--truth", required=True, type=Path, help="folder of truth masks, or a dataset root")
    p.add_argument(
        "-o", "--output", "--out", dest="out", type=Path, help="where the CSV and summary go (default: --pred)"
    )
    p.add_argument(
        "--label-values",
        "--labels",
        dest="labels",
        type=int,
        nargs="+",
        help="label values to score (default: all nonzero in the truth)",
    )
    p.add_argument("--surface", action="store_true", help="also HD95 and average surface distance")
    p.add_argument(
        "--roi-mask",
        "--roi",
        dest="roi",
        type=Path,
        help="folder of region-of-interest masks, by case name (metrics inside them only)",
    )


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg demo``."""
    p = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=HelpFormatter,
        help="synth -> train -> predict -> evaluate, 2D and 3D",
        description="Run the whole pipeline on built-in synthetic data (PNG slices and NIfTI volumes)\n"
        "and print validation Dice per class.\n\nexample:\n  medseg demo -o runs/demo",
    )
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (no accuracy target)")
    p.add_argument("--seed", type=int, default=0)


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg run``."""
    p = sub.add_parser(
        "run",
        parents=[common],
        formatter_class=HelpFormatter,
        help="run a real-data recipe: train, predict, evaluate, report",
        description="Run a recipe of pipelines/ on the real datasets (../shared/data or $MEDSEG_DATA_DIR);\n"
        "the options after the recipe are the recipe's own (medseg run NAME --help lists them).\n\n"
        "example:\n  medseg run pipelines/msd_hippocampus.py --time-budget-min 30 --out runs/msd_hippocampus\n"
        "  medseg run drive_retina --network all --smoke",
    )
    p.add_argument(
        "recipe", help="pipelines/NAME.py or NAME (isbi2012_em, drive_retina, chaos_mr_liver2d, msd_hippocampus)"
    )
    p.add_argument("recipe_args", nargs=argparse.REMAINDER, help="the recipe's options, e.g. --network unet --smoke")


def _add_bundle(sub: Any, common: argparse.ArgumentParser) -> None:
    """``medseg bundle``."""
    p = sub.add_parser(
        "bundle",
        parents=[common],
        formatter_class=HelpFormatter,
        help="list, run or verify the MONAI bundles under bundles/",
        description="The MONAI bundles (bundles/NAME/configs/*.json) without typing python -m monai.bundle.\n"
        "'run' takes the config names (merged in order) and then any config id as --ID VALUE\n"
        "(JSON or Python literal values); a broken config is reported as one line naming the key.\n\n"
        "example:\n  medseg bundle list\n"
        "  medseg bundle run unet2d_png train --dataset_dir data/synth2d --epochs 5\n"
        "  medseg bundle run unet2d_png inference --dataset_dir scans/ --output_dir masks/\n"
        "  torchrun --nproc_per_node 2 -m medseg_monai.cli bundle run unet2d_png train multi_gpu_train "
        "--dataset_dir data/synth2d\n"
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
