"""One set of command-line habits: -o/-i, --version, defaults and exit codes in --help, run folders that are never
trained into by accident, required inputs checked before torch loads, progress that reads well in a log."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from medseg_monai import __version__
from medseg_monai.cli import build_parser, main
from medseg_monai.utils import progress_bars, set_progress

TINY = [
    "--epochs",
    "1",
    "--patch-size",
    "32",
    "32",
    "--batch-size",
    "2",
    "--network-options",
    '{"channels": [4, 8], "strides": [2]}',
]


def _medseg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medseg_monai.cli", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def _help(*command: str) -> str:
    parser = build_parser()
    if not command:
        return parser.format_help()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[command[0]]
    return sub.format_help()


def test_version_and_the_exit_status_table():
    done = _medseg("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"medseg-monai {__version__}"
    text = _help()
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert f"\n  {code}" in text, code
    assert "internal error, a bug of medseg-monai" in text


@pytest.mark.parametrize(
    ("command", "dest"),
    [("synth", "out"), ("train", "out"), ("predict", "output"), ("export", "artefact"), ("evaluate", "out")],
)
def test_every_writing_command_takes_o_and_output_with_out_kept(command, dest):
    required = {
        "synth": [],
        "train": [],
        "predict": ["--model", "m", "-i", "a.nii.gz"],
        "export": ["--model", "m"],
        "evaluate": ["--pred", "p", "--truth", "t"],
    }[command]
    for flag in ("-o", "--output", "--out"):
        args = build_parser().parse_args([command, *required, flag, "target"])
        assert str(getattr(args, dest)) == "target", flag


def test_one_name_per_concept_and_defaults_in_help():
    parser = build_parser()
    evaluate = parser.parse_args(["evaluate", "--pred", "p", "--truth", "t", "--roi-mask", "r", "--label-values", "1"])
    assert str(evaluate.roi) == "r" and evaluate.labels == [1]
    export = parser.parse_args(["export", "--model", "m", "-o", "x.ts", "--output-format", "torchscript"])
    assert export.format == "torchscript"
    assert "(default: 2)" in _help("synth") and "(default: runs/demo)" in _help("demo")
    predict = _help("predict")
    assert "(default: the run's; new runs 0.25)" in " ".join(predict.split())  # --overlap
    assert "(default: best)" in predict


def test_required_inputs_fail_before_torch_loads_naming_the_flag(tmp_path):
    code = "import sys; from medseg_monai.cli import main; rc = main(sys.argv[1:]); print(rc, 'torch' in sys.modules)"
    cases = {
        ("train", "-o", str(tmp_path / "run")): "--data is required",
        ("train", "--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "run")): "--data ",
        ("predict", "--model", str(tmp_path / "none"), "-i", "x.nii.gz", "-o", str(tmp_path / "o")): "--model ",
    }
    for args, message in cases.items():
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
        assert done.stdout.split() == ["2", "False"], (args, done.stdout, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_folder_holding_a_run_is_refused_unless_resume_or_overwrite(synth_2d, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-q", "train", "--data", str(synth_2d), "-o", str(run), *TINY]) == 0
    log = (run / "train.log").read_text()
    assert "epoch 1/1: loss " in log and "\r" not in log  # INFO lines in the run's log although -q
    capsys.readouterr()
    assert main(["-q", "train", "--data", str(synth_2d), "-o", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    stale = run / "checkpoints" / "stale.pt"
    stale.write_bytes(b"")
    assert main(["-q", "train", "--data", str(synth_2d), "-o", str(run), "--overwrite", *TINY]) == 0
    assert not stale.exists() and (run / "checkpoints" / "best.pt").is_file()
    assert main(["-q", "train", "--data", str(synth_2d), "-o", str(tmp_path / "new"), "--resume", *TINY]) == 2
    assert "holds no checkpoints/last.pt" in capsys.readouterr().err


def test_without_a_terminal_the_batch_logs_one_line_per_case(run_2d, synth_2d, tmp_path, caplog):
    set_progress("auto")
    assert not progress_bars()  # pytest captures standard error: no terminal
    images = sorted(synth_2d.glob("case_00[0-2].png"))
    with caplog.at_level(logging.INFO, logger="medseg_monai"):
        assert main(["predict", "--model", str(run_2d.run_dir), "-i", *map(str, images), "-o", str(tmp_path)]) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predict ")]
    assert len(lines) == 3 and lines[0].startswith("predict 1/3 case_000.png: written in ")
    assert "cases/min, 0 failed" in lines[-1]
    assert json.loads((tmp_path / "predict_manifest.json").read_text())["summary"]["written"] == 3


def test_quiet_keeps_warnings_and_the_summary(run_2d, synth_2d, tmp_path):
    done = _medseg(
        "-q", "predict", "--model", str(run_2d.run_dir), "-i", str(synth_2d / "case_000.png"), "-o", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.startswith("1 written, 0 skipped")
    set_progress("on")
    assert progress_bars()
    set_progress("auto")
