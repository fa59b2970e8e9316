"""Checks of a command's required inputs before anything heavy is imported: a missing dataset, model or
input fails at once with the flag that names it, and a run folder is never trained into by accident."""

from __future__ import annotations

import argparse
import glob
import shutil
from pathlib import Path

from medseg_monai.errors import InputError

__all__ = ["check_predict_inputs", "check_train_inputs", "prepare_run_folder"]

#: what marks a folder as holding a run, and what ``--overwrite`` removes (the rest is rewritten by training)
RUN_MARKERS = ("config.json", "checkpoints")
STALE_ON_OVERWRITE = ("checkpoints", "tensorboard")


def check_train_inputs(args: argparse.Namespace, data_dir: str, datalist: str | None) -> None:
    """The training data named (``--data``, or the ``--config`` file's) and there, unless resuming."""
    if args.resume:
        return
    named = datalist or data_dir
    if not named:
        raise InputError(
            "--data is required: a dataset folder (flat, images/+masks/, imagesTr/+labelsTr/) or a datalist .json"
        )
    if not Path(named).expanduser().exists():
        flag = "--data" if args.data else f"--config {args.config}: data.{'datalist' if datalist else 'data_dir'}"
        raise InputError(f"{flag} {named}: no such folder or file")


def prepare_run_folder(args: argparse.Namespace, main_process: bool = True) -> None:
    """Refuse a folder that holds a run unless ``--resume`` or ``--overwrite``; ``--overwrite`` clears its
    checkpoints and TensorBoard events (rank 0 only under ``torchrun``)."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out}: a file, not a run folder")
    holds_run = any((out / name).exists() for name in RUN_MARKERS)
    if args.resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise InputError(f"--resume: {out} holds no checkpoints/last.pt to continue from")
        return
    if holds_run and not args.overwrite:
        raise InputError(
            f"--output {out}: already holds a run (config.json, checkpoints/); pass --resume to continue it or "
            "--overwrite to train a new one in its place"
        )
    if holds_run and main_process:
        for name in STALE_ON_OVERWRITE:
            shutil.rmtree(out / name, ignore_errors=True)


def check_predict_inputs(args: argparse.Namespace) -> None:
    """The model there, and at least one input that exists (a batch goes on past a bad case among others)."""
    if not Path(args.model).exists():
        raise InputError(f"--model {args.model}: no such run folder, checkpoint or exported model")
    literal = [text for text in args.input if not glob.has_magic(text)]
    if len(literal) == len(args.input) and not any(Path(text).expanduser().exists() for text in literal):
        raise InputError(f"--input {' '.join(args.input)}: no such file or folder")
