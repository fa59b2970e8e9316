"""The MONAI bundles under bundles/: metadata per the bundle specification, and for every bundle a tiny
train -> inference -> evaluate -> TorchScript export round on synthetic data, as a user runs them."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medseg_monai import bundle as mb
from medseg_monai.cli import main
from tests.helpers import REPO

BUNDLES_DIR = REPO / "bundles"
BUNDLE_NAMES = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").is_file())

# MONAI bundle specification (docs/source/mb_specification.rst, meta_schema_20240725.json): required
# metadata keys with their JSON types, and the keys every tensor format specifier must hold.
SPEC_METADATA = {
    "schema": str,
    "version": str,
    "changelog": dict,
    "monai_version": str,
    "pytorch_version": str,
    "numpy_version": str,
    "required_packages_version": dict,
    "task": str,
    "description": str,
    "authors": (str, list),
    "copyright": str,
    "network_data_format": dict,
}
SPEC_TENSOR = {
    "type": str,
    "format": str,
    "modality": str,
    "num_channels": int,
    "spatial_shape": list,
    "dtype": str,
    "value_range": list,
    "is_patch_data": bool,
    "channel_def": dict,
}
SPEC_FILES = ("configs/metadata.json", "configs/train.json", "configs/multi_gpu_train.json", "configs/inference.json",
              "configs/evaluate.json", "configs/logging.conf", "docs/README.md", "LICENSE")

TINY_UNET = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}
SMOKE = {
    "unet2d_png": (2, {"network_options": TINY_UNET}),
    "unetpp2d_ds": (2, {"network_options": {"features": [4, 4, 8, 8, 16, 4]}}),
    "deeplabv3_2d": (2, {"network_options": {"backbone": "mobilenet_v3_large"}, "samples_per_image": 2}),
    "unet3d_nifti": (3, {"network_options": TINY_UNET, "patch_size": [16, 16, 16]}),
}


@pytest.fixture(autouse=True)
def keep_root_logging():
    """Bundle runs apply configs/logging.conf to the root logger; put the test process's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def copy_bundle(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(BUNDLES_DIR / name, target, ignore=shutil.ignore_patterns("models", "runs", "eval", "predictions"))
    return target


def smoke_overrides(name: str, data_dir: Path) -> dict:
    dims, extra = SMOKE[name]
    return {
        "dataset_dir": str(data_dir), "epochs": 1, "batch_size": 2, "samples_per_image": 1, "val_fraction": 0.25,
        "patch_size": [32, 32] if dims == 2 else [16, 16, 16], "device": "cpu", **extra,
    }


def test_every_shipped_model_has_a_bundle():
    assert set(SMOKE) <= set(BUNDLE_NAMES)


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_bundle_layout_and_metadata_follow_the_specification(name):
    root = BUNDLES_DIR / name
    for rel in SPEC_FILES:
        assert (root / rel).is_file(), f"{name}: {rel} missing"
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    for key, kind in SPEC_METADATA.items():
        assert isinstance(meta.get(key), kind), f"{name}: metadata key {key!r} missing or not {kind}"
    assert meta["schema"].startswith("https://") and meta["schema"].endswith(".json")
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["version"] in meta["changelog"]
    assert "optional_packages_version" not in meta, "MONAI 1.6 renames it onto required_packages_version"
    fmt = meta["network_data_format"]
    for section in ("inputs", "outputs"):
        assert fmt[section], f"{name}: network_data_format.{section} is empty"
        for tensor, spec in fmt[section].items():
            for key, kind in SPEC_TENSOR.items():
                value = spec.get(key)
                ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
                assert ok, f"{name}: {section}.{tensor}.{key} missing or not {kind}"
    pred = fmt["outputs"]["pred"]
    assert pred["channel_def"] == {"0": "background", "1": "organ", "2": "lesion"}
    assert pred["num_channels"] == len(pred["channel_def"])
    train = json.loads((root / "configs" / "train.json").read_text())
    assert train["label_names"] == list(pred["channel_def"].values()), "train.json labels and metadata channel_def differ"
    assert mb.verify_bundle(root) == []


def test_weights_and_outputs_are_never_committed():
    ignored = (BUNDLES_DIR / ".gitignore").read_text().split()
    assert {"*/models/", "*/runs/", "*/predictions/", "*/eval/"} <= set(ignored)
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "bundles"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not [t for t in tracked if t.endswith((".pt", ".ts", ".onnx", ".pth"))]


def test_verify_names_each_broken_key(tmp_path):
    root = copy_bundle("unet2d_png", tmp_path)
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    del meta["task"]
    meta["version"] = "1.0"
    meta["network_data_format"]["inputs"]["image"]["num_channels"] = "1"
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    train = json.loads((root / "configs" / "train.json").read_text())
    train["run"][0]["epochz"] = 3
    train["model_dir"] = "/srv/models"
    train["config"]["data"] = "@dataa"
    (root / "configs" / "train.json").write_text(json.dumps(train))
    (root / "LICENSE").unlink()
    problems = "\n".join(mb.verify_bundle(root))
    for expected in ("LICENSE: missing", "key 'task' missing", "'version' '1.0' is not semantic", "key 'num_channels' is str",
                     "key 'run#0': medseg_monai.bundle.train_bundle takes no argument 'epochz'", "key 'model_dir': absolute path",
                     "key 'config#data': refers to '@dataa'"):
        assert expected in problems, f"{expected!r} not in:\n{problems}"
    assert main(["bundle", "verify", str(root)]) == 1


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_train_infer_evaluate_export_round(name, synth_2d, synth_3d, tmp_path):
    dims = SMOKE[name][0]
    data = synth_2d if dims == 2 else synth_3d
    root = copy_bundle(name, tmp_path)

    result = mb.run_bundle(root, ["train"], smoke_overrides(name, data))[0]
    assert result.epochs_run == 1
    models = root / "models"
    state = torch.load(models / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()), "model.pt must be a plain state_dict"
    trained = json.loads((models / "config.json").read_text())
    assert trained["data"]["label_names"] == ["background", "organ", "lesion"] and trained["data"]["in_channels"] == 1
    assert len(list(csv.DictReader((root / "runs" / "train" / "metrics.csv").open()))) == 1

    masks = tmp_path / "masks"
    suffix = ".png" if dims == 2 else ".nii.gz"
    image = data / f"case_000{suffix}" if dims == 2 else data / "imagesTr" / f"case_000{suffix}"
    mb.run_bundle(root, ["inference"], {"dataset_dir": str(image), "output_dir": str(masks), "device": "cpu"})
    assert [p.name for p in masks.iterdir() if p.name.endswith(suffix)] == [image.name]

    mb.run_bundle(root, ["evaluate"], {"dataset_dir": str(data), "device": "cpu"})
    summary = json.loads((root / "eval" / "metrics_summary.json").read_text())
    assert summary["cases"] == len(list(data.rglob(f"*{suffix}"))) // 2 and set(summary["per_label"]) == {"organ", "lesion"}
    assert (root / "eval" / "metrics_per_case.csv").is_file()

    from monai.bundle import ckpt_export

    trace = {"use_trace": True, "input_shape": [1, 1, 32, 32]} if name == "deeplabv3_2d" else {}
    ckpt_export(
        net_id="network_def", filepath=str(models / "model.ts"), ckpt_file=str(models / "model.pt"),
        meta_file=str(root / "configs" / "metadata.json"), config_file=str(root / "configs" / "inference.json"), bundle_root=str(root), **trace,
    )
    scripted = torch.jit.load(str(models / "model.ts"))
    network = mb.network_from_config(models / "config.json")
    network.load_state_dict(state)
    x = torch.rand((2, 1) + (32,) * dims)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x), rtol=1e-4, atol=1e-4)


def test_monai_bundle_command_line_and_one_line_errors(synth_2d, tmp_path):
    """``python -m monai.bundle run`` as documented, and ``medseg bundle run`` naming the broken key."""
    root = copy_bundle("unet2d_png", tmp_path)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(root / "configs" / "train.json"), "--bundle_root", str(root),
           "--dataset_dir", str(synth_2d), "--epochs", "1", "--batch_size", "2", "--samples_per_image", "1", "--patch_size", "[32,32]",
           "--network_options", json.dumps(TINY_UNET).replace(" ", ""), "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "config.json").is_file()

    missing = subprocess.run([sys.executable, "-m", "medseg_monai.cli", "bundle", "run", str(root), "train"], capture_output=True, text=True, timeout=300)
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr[-2000:]
    assert "key 'config'" in lines[0] and "dataset_dir is required" in lines[0]

    broken = json.loads((root / "configs" / "train.json").read_text())
    broken["config"]["dataset_dirr"] = broken["config"].pop("dataset_dir")
    (root / "configs" / "train.json").write_text(json.dumps(broken))
    with pytest.raises(mb.BundleError, match=r"key 'config'.*unexpected keyword argument 'dataset_dirr'"):
        mb.run_bundle(root, ["train"], {"dataset_dir": str(synth_2d)})


def test_bundle_list_and_missing_bundle(capsys):
    assert main(["bundle", "list", "--root", str(BUNDLES_DIR)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUNDLE_NAMES)
    assert main(["bundle", "run", "no_such_bundle", "--root", str(BUNDLES_DIR)]) == 2
    assert "no_such_bundle" in capsys.readouterr().err
