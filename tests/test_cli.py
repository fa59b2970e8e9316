"""The medseg command as a user runs it: help, synth, train, predict, evaluate, error messages."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medseg_monai.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medseg_monai.cli", *args], capture_output=True, text=True, timeout=600
    )


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
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                str(data),
                "--network",
                "unet",
                "--out",
                str(run),
                "--epochs",
                "1",
                "--patch-size",
                "32",
                "32",
                "--batch-size",
                "2",
                "--set",
                'model.options={"channels": [8, 16, 32], "strides": [2, 2]}',
            ]
        )
        == 0
    )
    assert json.loads((run / "config.json").read_text())["model"]["options"]["channels"] == [8, 16, 32]
    assert main(["-q", "predict", "--model", str(run), "--input", str(data), "--output", str(masks)]) == 0
    assert len(list(masks.glob("*.png"))) == 6
    cleaned = tmp_path / "cleaned"
    assert (
        main(
            [
                "-q",
                "predict",
                "--model",
                str(run),
                "--input",
                str(data),
                "--output",
                str(cleaned),
                "--min-component-size",
                "20",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    manifest = json.loads((cleaned / "predict_manifest.json").read_text())
    assert manifest["infer"]["min_component_size"] == 20 and "precision" not in manifest["infer"]
    assert manifest["runtime"] == {"device": "auto", "precision": "fp32", "memory_format": "auto"}
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
    result = run_cli(
        "-q",
        "predict",
        "--model",
        str(run_2d.run_dir),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
    )
    assert result.returncode == 1
    assert "1 written, 0 skipped (already done), 1 failed" in result.stdout
    assert "FAILED" in result.stdout and "bad.png" in result.stdout
    assert (tmp_path / "out" / "good.png").exists()


def _option_strings(command: str) -> set[str]:
    from medseg_monai.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {s for action in sub._actions for s in action.option_strings}


def test_every_setting_has_a_flag_named_after_its_field():
    from medseg_monai.config import (
        BatchOptions,
        DataConfig,
        InferConfig,
        ModelConfig,
        RuntimeConfig,
        TrainConfig,
        field_specs,
    )

    predict, train = _option_strings("predict"), _option_strings("train")
    for spec in (*field_specs(InferConfig), *field_specs(RuntimeConfig)):
        assert "--" + spec.name.replace("_", "-") in predict, spec.name
        if spec.kind == "bool":
            assert "--no-" + spec.name.replace("_", "-") in predict, spec.name
    # a flag named after every field, but where two sections share a name or a shorter name reads better
    renamed = {
        "data.seed": "--split-seed",
        "data.spatial_dims": "--dims",
        "data.target_spacing": "--spacing",
        "model.name": "--network",
        "model.options": "--network-options",
    }
    cli_less = {"data.data_dir", "data.datalist"}  # both come from --data
    sections = (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig), ("runtime", RuntimeConfig))
    for section, cls in sections:
        for spec in field_specs(cls):
            key = f"{section}.{spec.name}"
            if key not in cli_less:
                assert renamed.get(key, "--" + spec.name.replace("_", "-")) in train, key
    assert {
        "--" + spec.name.replace("_", "-") for spec in field_specs(BatchOptions) if spec.name != "progress"
    } <= predict
    # the names users typed before stay
    assert {
        "--tta",
        "--no-tta",
        "--keep-largest",
        "--fill-holes",
        "--roi-size",
        "--sw-batch-size",
        "--stitching",
        "--no-manifest",
        "--report",
        "--num-parts",
        "--part-id",
        "--overwrite",
        "--min-component-size",
    } <= predict
    assert {
        "--lr",
        "--val-data",
        "--spacing",
        "--dims",
        "--network",
        "--deep-supervision",
        "--pretrained",
        "--patch-size",
        "--intensity",
        "--epochs",
        "--batch-size",
        "--time-budget-min",
        "--device",
        "--seed",
        "--distributed",
    } <= train


def test_flags_become_exactly_the_settings_given(tmp_path):
    from medseg_monai.cli import batch_options, build_parser, train_config
    from medseg_monai.config.flags import settings_from_args

    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--data",
            str(tmp_path / "list.json"),
            "--out",
            str(tmp_path),
            "--lr",
            "0.02",
            "--no-augment",
            "--flip-axes",
            "1",
            "--spacing",
            "--network-options",
            '{"channels": [8, 16]}',
            "--split-seed",
            "3",
            "--set",
            "train.epochs=3",
        ]
    )
    config = train_config(args)
    assert config.data.datalist == str(tmp_path / "list.json") and config.data.data_dir == ""
    assert config.train.learning_rate == 0.02 and config.train.epochs == 3 and config.data.augment is False
    assert (
        config.data.flip_axes == (1,)
        and config.data.target_spacing == ()
        and config.data.seed == 3
        and config.train.seed == 0
    )
    assert config.model.options == {"channels": [8, 16]} and config.data.spatial_dims is None  # 2D or 3D: from the data
    args = parser.parse_args(
        [
            "predict",
            "--model",
            "m",
            "--input",
            "i",
            "--output",
            str(tmp_path),
            "--tta",
            "--no-tta-flips",
            "--keep-largest-component",
            "--overlap",
            "0.5",
            "--report",
            "--no-manifest",
            "--roi-size",
            "null",
            "--output-format",
            "null",
            "--sw-device",
            "null",
        ]
    )
    assert settings_from_args(args, "infer") == {
        "tta_flips": False,
        "keep_largest_component": True,
        "overlap": 0.5,
        "roi_size": None,
        "output_format": None,
        "sw_device": None,
    }
    options = batch_options(args)
    assert (
        options.report == str(tmp_path / "predict_report.html")
        and options.manifest is False
        and options.overwrite is False
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "--model", "m", "--input", "i", "--output", "o", "--blend-mode", "median"])


def test_medseg_train_and_the_api_write_the_same_configuration_for_a_folder(synth_3d, tmp_path):
    """2D or 3D, the patch size, channels, labels and spacing come from the data, the same way for both."""
    from medseg_monai import DataConfig, ModelConfig, RunConfig, RuntimeConfig, TrainConfig, train

    options = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                str(synth_3d),
                "--out",
                str(tmp_path / "cli"),
                "--epochs",
                "1",
                "--batch-size",
                "1",
                "--device",
                "cpu",
                "--network-options",
                json.dumps(options),
                "--samples-per-image",
                "1",
            ]
        )
        == 0
    )
    train(
        RunConfig(
            data=DataConfig(data_dir=str(synth_3d), samples_per_image=1),
            model=ModelConfig(options=options),
            train=TrainConfig(epochs=1, batch_size=1),
            runtime=RuntimeConfig(device="cpu"),
        ),
        tmp_path / "api",
    )
    cli, api = (json.loads((tmp_path / run / "config.json").read_text()) for run in ("cli", "api"))
    assert cli == api
    data = cli["data"]
    assert data["spatial_dims"] == 3 and data["patch_size"] == [96, 96, 64] and data["in_channels"] == 1
    assert data["label_values"] == [0, 1, 2] and data["target_spacing"] == pytest.approx([1.2, 1.2, 2.5])


def test_resume_keeps_the_runs_epochs_unless_epochs_is_given(tmp_path):
    from medseg_monai.cli import build_parser, train_config
    from medseg_monai.config import RunConfig, TrainConfig

    RunConfig(train=TrainConfig(epochs=3)).save(tmp_path / "config.json")
    resumed = train_config(build_parser().parse_args(["train", "--out", str(tmp_path), "--resume"]))
    assert resumed.train.epochs == 3
    extended = train_config(build_parser().parse_args(["train", "--out", str(tmp_path), "--resume", "--epochs", "5"]))
    assert extended.train.epochs == 5
    fresh = train_config(build_parser().parse_args(["train", "--out", str(tmp_path)]))
    assert fresh.train.epochs == TrainConfig().epochs
