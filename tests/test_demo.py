"""`medseg demo`: the quick variant in the default suite, the full accuracy target behind `slow`."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from medseg_monai.cli import main
from medseg_monai.demo import DEMO_TARGET_DICE


def check_outputs(out):
    summary = json.loads((out / "summary.json").read_text())
    for name in ("unet2d", "unet3d"):
        run = out / name
        for figure in ("curves.png", "predictions.png"):
            with Image.open(run / figure) as png:
                assert png.format == "PNG"
        assert (run / "checkpoints" / "best.pt").is_file() and (run / "metrics.csv").is_file()
        assert (run / "evaluation" / "metrics_per_case.csv").is_file()
        assert summary["runs"][name]["failed_cases"] == []
        assert summary["runs"][name]["predicted_cases"] > 0
    assert any((out / "unet3d" / "predictions").glob("*.nii.gz"))
    assert any((out / "unet2d" / "predictions").glob("*.png"))
    return summary


def test_quick_demo_writes_every_output(tmp_path, capsys):
    assert main(["-q", "demo", "--quick", "--out", str(tmp_path)]) == 0
    check_outputs(tmp_path)
    assert "unet3d: validation Dice organ" in capsys.readouterr().out


@pytest.mark.slow
def test_full_demo_reaches_lesion_dice_target(tmp_path):
    assert main(["-q", "demo", "--out", str(tmp_path)]) == 0
    summary = check_outputs(tmp_path)
    assert summary["target_lesion_dice"] == DEMO_TARGET_DICE
    for run in summary["runs"].values():
        assert run["dice_lesion"] >= DEMO_TARGET_DICE and run["lesion_target_met"]
