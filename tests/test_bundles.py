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
from tests.helpers import REPO, TINY_NETWORKS, TINY_UNET

BUNDLES_DIR = REPO / "bundles"
BUNDLE_NAMES = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").is_file())

#: per bundle: spatial dims, and the tiny network every run of the test uses (training and inference alike)
SMOKE = {
    "unet2d_png": (2, {"network_options": TINY_NETWORKS["unet"]}),
    "unetpp2d_ds": (2, {"network_options": TINY_NETWORKS["unetpp"]}),
    "deeplabv3_2d": (2, {"network_options": TINY_NETWORKS["deeplabv3"]}),
    "unet3d_nifti": (3, {"network_options": TINY_NETWORKS["unet"]}),
}
TRAIN_ONLY = {"deeplabv3_2d": {"samples_per_image": 2}, "unet3d_nifti": {"patch_size": [16, 16, 16]}}


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
    dims, network = SMOKE[name]
    return {
        "dataset_dir": str(data_dir),
        "epochs": 1,
        "batch_size": 2,
        "samples_per_image": 1,
        "val_fraction": 0.25,
        "patch_size": [32, 32] if dims == 2 else [16, 16, 16],
        "device": "cpu",
        **network,
        **TRAIN_ONLY.get(name, {}),
    }


def test_every_shipped_model_has_a_bundle():
    assert set(SMOKE) <= set(BUNDLE_NAMES)


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_bundle_layout_and_metadata_follow_the_specification(name):
    root = BUNDLES_DIR / name
    assert (
        mb.verify_bundle(root) == []
    )  # files, metadata keys and types, configs, targets, references, declared network
    for rel in mb.BUNDLE_FILES:
        assert (root / rel).is_file(), f"{name}: {rel} missing"
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    from monai.bundle.utils import (
        DEFAULT_METADATA,
    )  # what MONAI's init_bundle writes: the specification's required keys

    assert set(DEFAULT_METADATA) <= set(mb.METADATA_REQUIRED) <= set(meta) and {"inputs", "outputs"} <= set(
        meta["network_data_format"]
    )
    assert meta["schema"].startswith("https://") and meta["schema"].endswith(".json")
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["version"] in meta["changelog"]
    assert "optional_packages_version" not in meta, "MONAI 1.6 renames it onto required_packages_version"
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert set(mb.TENSOR_REQUIRED) <= set(pred)
    assert pred["channel_def"] == {"0": "background", "1": "organ", "2": "lesion"}
    for config in ("train", "inference"):
        declared = json.loads((root / "configs" / f"{config}.json").read_text())
        assert declared["label_names"] == list(pred["channel_def"].values()), (
            f"{config}.json labels and metadata channel_def differ"
        )


def _check_network_def(root: Path, tmp_path: Path, overrides: dict, ckpt: Path | None = None) -> None:
    """MONAI's own checks as the model zoo's CI runs them: network_def builds from the configs and its in/out shapes fit
    the metadata; the TorchScript export of the checkpoint (random weights of network_def before training) gives the
    network's own output."""
    from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

    files = dict(
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(root / "configs" / "inference.json"),
        bundle_root=str(root),
    )
    verify_net_in_out(net_id="network_def", device="cpu", **files, **overrides)
    parser = ConfigParser()
    parser.read_config(files["config_file"])
    parser.update({"bundle_root": str(root), **overrides})
    network = parser.get_parsed_content("network_def")
    if ckpt is None:  # before training: the export of network_def's own (random) weights
        ckpt = tmp_path / "random.pt"
        torch.save(network.state_dict(), ckpt)
    network.load_state_dict(torch.load(ckpt, weights_only=True))
    dims = parser["spatial_dims"]
    trace = {"use_trace": True, "input_shape": [1, 1, 32, 32]} if root.name.startswith("deeplab") else {}
    exported = tmp_path / f"{ckpt.stem}.ts"
    ckpt_export(net_id="network_def", filepath=str(exported), ckpt_file=str(ckpt), **files, **trace, **overrides)
    x = torch.rand((2, 1) + (32,) * dims)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(exported))(x), network(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_network_def_is_instantiable_as_shipped(name, tmp_path):
    """A fresh copy, before any training: verify_net_in_out and ckpt_export of the shipped network."""
    root = copy_bundle(name, tmp_path)
    assert not (root / "models").exists()
    _check_network_def(root, tmp_path, {})


def test_weights_and_outputs_are_never_committed():
    ignored = (BUNDLES_DIR / ".gitignore").read_text().split()
    assert {"*/models/", "*/runs/", "*/predictions/", "*/eval/"} <= set(ignored)
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "bundles"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
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
    for expected in (
        "LICENSE: missing",
        "key 'task' missing",
        "'version' '1.0' is not semantic",
        "key 'num_channels' is str",
        "key 'run#0': medseg_monai.bundle.train_bundle takes no argument 'epochz'",
        "key 'model_dir': absolute path",
        "key 'config#data': refers to '@dataa'",
    ):
        assert expected in problems, f"{expected!r} not in:\n{problems}"
    assert main(["bundle", "verify", str(root)]) == 1


def test_verify_finds_a_network_the_configs_declare_twice_differently(tmp_path):
    root = copy_bundle("unet3d_nifti", tmp_path)
    inference = json.loads((root / "configs" / "inference.json").read_text())
    inference["network_options"]["channels"] = [8, 16, 32, 64, 128]
    inference["label_values"] = [0, 1]
    (root / "configs" / "inference.json").write_text(json.dumps(inference))
    problems = "\n".join(mb.verify_bundle(root))
    assert "train.json key 'model'" in problems and "differs from inference.json's" in problems
    assert "key 'data#label_values' is [0, 1, 2] in train.json but [0, 1] in inference.json" in problems
    assert "'network_data_format#outputs#pred#num_channels' is 3, the configs declare 2 label values" in problems


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_train_infer_evaluate_export_round(name, synth_2d, synth_3d, tmp_path):
    dims, network = SMOKE[name]
    data = synth_2d if dims == 2 else synth_3d
    root = copy_bundle(name, tmp_path)

    result = mb.run_bundle(root, ["train"], smoke_overrides(name, data))[0]
    assert result.epochs_run == 1
    models = root / "models"
    state = torch.load(models / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()), "model.pt must be a plain state_dict"
    trained = json.loads((models / "config.json").read_text())
    assert trained["data"]["label_names"] == ["background", "organ", "lesion"] and trained["data"]["in_channels"] == 1
    declared = json.loads((root / "configs" / "inference.json").read_text())
    assert trained["model"]["name"] == declared["network"] and trained["model"]["options"] == network["network_options"]
    assert len(list(csv.DictReader((root / "runs" / "train" / "metrics.csv").open()))) == 1

    masks = tmp_path / "masks"
    suffix = ".png" if dims == 2 else ".nii.gz"
    image = data / f"case_000{suffix}" if dims == 2 else data / "imagesTr" / f"case_000{suffix}"
    mb.run_bundle(
        root,
        ["inference"],
        {"dataset_dir": str(image), "output_dir": str(masks), "device": "cpu", "infer#overlap": 0.5, **network},
    )
    assert [p.name for p in masks.iterdir() if p.name.endswith(suffix)] == [image.name]
    assert json.loads((masks / "predict_manifest.json").read_text())["infer"]["overlap"] == 0.5

    mb.run_bundle(
        root, ["evaluate"], {"dataset_dir": str(data), "device": "cpu", **network}
    )  # merged over inference.json
    summary = json.loads((root / "eval" / "metrics_summary.json").read_text())
    assert summary["cases"] == len(list(data.rglob(f"*{suffix}"))) // 2 and set(summary["per_label"]) == {
        "organ",
        "lesion",
    }
    assert (root / "eval" / "metrics_per_case.csv").is_file()

    _check_network_def(root, tmp_path, network, ckpt=models / "model.pt")  # after training, with the trained weights
    if name == "unet2d_png":  # the shipped network does not fit weights trained with other options: a named error
        with pytest.raises(
            mb.BundleError,
            match=r"key 'predictor'.*do not fit the network the configs declare.*trained as 'unet' with options",
        ):
            mb.run_bundle(root, ["inference"], {"dataset_dir": str(image), "output_dir": str(masks), "device": "cpu"})


def test_monai_bundle_command_line_and_one_line_errors(synth_2d, tmp_path):
    """``python -m monai.bundle run`` as documented, and ``medseg bundle run`` naming the broken key."""
    root = copy_bundle("unet2d_png", tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(root / "configs" / "train.json"),
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(synth_2d),
        "--epochs",
        "1",
        "--batch_size",
        "2",
        "--samples_per_image",
        "1",
        "--patch_size",
        "[32,32]",
        "--network_options",
        json.dumps(TINY_UNET).replace(" ", ""),
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "config.json").is_file()

    missing = subprocess.run(
        [sys.executable, "-m", "medseg_monai.cli", "bundle", "run", str(root), "train"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr[-2000:]
    assert "key 'config'" in lines[0] and "dataset_dir is required" in lines[0]

    broken = json.loads((root / "configs" / "train.json").read_text())
    broken["config"]["dataset_dirr"] = broken["config"].pop("dataset_dir")
    (root / "configs" / "train.json").write_text(json.dumps(broken))
    with pytest.raises(mb.BundleError, match=r"key 'config'.*unexpected keyword argument 'dataset_dirr'"):
        mb.run_bundle(root, ["train"], {"dataset_dir": str(synth_2d)})
    # an override that names no id would be added to the config and silently ignored: refused, with the id meant
    with pytest.raises(
        mb.BundleError, match=r"inference.json: override --overlap names no config id; did you mean --infer#overlap\?"
    ):
        mb.run_bundle(root, ["inference"], {"dataset_dir": str(synth_2d), "overlap": 0.5})
    with pytest.raises(
        mb.BundleError, match=r"override --data#patch_size: data#patch_size is not used by these configs"
    ):
        mb.run_bundle(
            root, ["inference"], {"dataset_dir": str(synth_2d), "data#patch_size": [64, 64]}
        )  # preprocessing is the trained one


def test_bundle_list_and_missing_bundle(capsys):
    assert main(["bundle", "list", "--root", str(BUNDLES_DIR)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUNDLE_NAMES)
    assert main(["bundle", "run", "no_such_bundle", "--root", str(BUNDLES_DIR)]) == 2
    assert "no_such_bundle" in capsys.readouterr().err
