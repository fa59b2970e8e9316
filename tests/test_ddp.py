"""Multi-process (torchrun, DistributedDataParallel) training on CPU with the gloo backend."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

from medseg_monai.training.distributed import setup_distributed
from medseg_monai.training.trainer import train
from tests.helpers import REPO, tiny_config

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def test_distributed_without_torchrun_is_an_actionable_error(synth_2d, tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    config = tiny_config(synth_2d, 2, epochs=1).override({"train.distributed": True})
    with pytest.raises(ValueError, match="torchrun"):
        train(config, tmp_path)
    context, device = setup_distributed(tiny_config(synth_2d, 2))
    assert not context.enabled and context.is_main and device.type in ("cpu", "cuda")


def test_two_process_bundle_training(synth_2d, tmp_path, tiny_networks):
    """``torchrun -m monai.bundle run`` with ``multi_gpu_train.json``: each process gets half the cases."""
    root = tmp_path / "unet2d_png"
    shutil.copytree(
        REPO / "bundles" / "unet2d_png", root, ignore=shutil.ignore_patterns("models", "runs", "eval", "predictions")
    )
    configs = f"['{root}/configs/train.json','{root}/configs/multi_gpu_train.json']"
    done = torchrun(
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        configs,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(synth_2d),
        "--epochs",
        "2",
        "--batch_size",
        "2",
        "--samples_per_image",
        "1",
        "--val_fraction",
        "0.25",
        "--patch_size",
        "[32,32]",
        "--network_options",
        json.dumps(tiny_networks["unet"]).replace(" ", ""),
        "--device",
        "cpu",
    )
    log = done.stdout + done.stderr
    assert "rank 0 of 2 on cpu (gloo)" in log and "rank 1 of 2 on cpu (gloo)" in log
    rows = list(csv.DictReader((root / "runs" / "train" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:  # the metrics gathered from both processes' validation shards
        assert float(row["val_mean_dice"]) == pytest.approx(
            (float(row["val_dice_organ"]) + float(row["val_dice_lesion"])) / 2, abs=1e-6
        )
    last = torch.load(root / "runs" / "train" / "checkpoints" / "last.pt", weights_only=True)
    # 6 training cases, 3 per process, batch 2 -> 2 steps per epoch (one process alone would take 3)
    assert last["trainer"]["iteration"] == 4
    assert not any(key.startswith("module.") for key in last["network"]), "checkpoints hold the unwrapped network"
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert state.keys() == last["network"].keys()


def test_medseg_train_under_torchrun_stops_all_processes_on_the_time_budget(synth_2d, tmp_path, tiny_networks):
    out = tmp_path / "run"
    done = torchrun(
        "-m",
        "medseg_monai.cli",
        "-q",
        "train",
        "--data",
        str(synth_2d),
        "--out",
        str(out),
        "--network",
        "unet",
        "--epochs",
        "3",
        "--time-budget-min",
        "0.0001",
        "--schedule-by-time",
        "--patch-size",
        "32",
        "32",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--distributed",
        "--set",
        f"model.options={json.dumps(tiny_networks['unet'])}",
        "--set",
        "data.samples_per_image=1",
        "--set",
        "train.val_interval=5",
    )
    assert done.stdout.count("best validation mean Dice") == 1, "only rank 0 reports"
    assert "(1 epochs)" in done.stdout, "rank 0 spent the budget after epoch 1; both processes stopped there"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 1 and rows[0]["val_mean_dice"], "the last epoch is validated even when the schedule stops early"
    # the learning rate of the epoch came from rank 0's share of the budget, broadcast to both processes at its start
    assert 1e-3 * 0.01 <= float(rows[0]["lr"]) < 1e-3
    assert json.loads((out / "config.json").read_text())["train"]["distributed"] is True
