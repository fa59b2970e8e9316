"""The medseg command as a user runs it: help, synth, train, predict, evaluate, error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medseg_monai.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medseg_monai.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", ["synth", "train", "predict", "evaluate", "demo"])
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = "import sys; from medseg_monai.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_synth_train_predict_evaluate_round(tmp_path):
    data, run, masks = tmp_path / "data", tmp_path / "run", tmp_path / "masks"
    assert main(["-q", "synth", "--dims", "2", "--cases", "6", "--shape", "48", "48", "--out", str(data)]) == 0
    assert main([
        "-q", "train", "--data", str(data), "--network", "unet", "--out", str(run), "--epochs", "1",
        "--patch-size", "32", "32", "--batch-size", "2", "--set", 'model.options={"channels": [8, 16, 32], "strides": [2, 2]}',
    ]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["options"]["channels"] == [8, 16, 32]
    assert main(["-q", "predict", "--model", str(run), "--input", str(data), "--output", str(masks)]) == 0
    assert len(list(masks.glob("*.png"))) == 6
    cleaned = tmp_path / "cleaned"
    assert main(["-q", "predict", "--model", str(run), "--input", str(data), "--output", str(cleaned), "--min-component-size", "20"]) == 0
    assert json.loads((cleaned / "predict_manifest.json").read_text())["infer"]["min_component_size"] == 20
    assert main(["-q", "evaluate", "--pred", str(masks), "--truth", str(data), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "metrics_per_case.csv").exists()


def test_bad_input_gives_one_line_error_and_nonzero_exit(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and lines[0].startswith("medseg train: error:")


def test_predict_reports_failed_cases_with_exit_1(run_2d, tmp_path):
    good = tmp_path / "in" / "good.png"
    good.parent.mkdir()
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(good)
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG broken")
    result = run_cli("-q", "predict", "--model", str(run_2d.run_dir), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "1 written, 0 skipped (already done), 1 failed" in result.stdout
    assert "FAILED" in result.stdout and "bad.png" in result.stdout
    assert (tmp_path / "out" / "good.png").exists()
