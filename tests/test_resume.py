"""Training survives ``kill -9`` anywhere: ``medseg train --resume`` continues from the last completed epoch and,
on the CPU's deterministic kernels, ends with exactly the weights and metrics of an uninterrupted run.

The killed processes are real ``medseg train`` processes (``medseg_monai.cli.main``) started by a small
launcher that, from the test side, pauses them at the chosen moment (inside an epoch, inside validation,
inside the write of ``last.pt``) and announces it with a marker file; the test then sends ``SIGKILL``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from medseg_monai import cli
from medseg_monai.config import RunConfig
from medseg_monai.errors import CheckpointError
from medseg_monai.models.checkpoint import load_checkpoint
from medseg_monai.training.trainer import train
from tests.helpers import REPO, tiny_config

EPOCHS = 3
#: wall-clock columns of metrics.csv: everything else must match an uninterrupted run exactly
TIME_COLUMNS = {"epoch_time_s", "elapsed_s", "data_wait_s", "val_time_s"}

# Runs `medseg train` with one pause point: the epoch-2 training step 2, the epoch-2 validation case 2, or the write of
# epoch 2's last.pt (half written, as a kill in the middle of torch.save leaves it). Arguments: marker, phase, argv...
LAUNCHER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import torch
    from monai.engines import SupervisedEvaluator, SupervisedTrainer

    from medseg_monai import cli

    marker, phase, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def pause():
        marker.write_text(phase)
        time.sleep(600)

    def paused(cls, when):
        step = cls._iteration
        def _iteration(self, engine, batch):
            if when(engine.state):
                pause()
            return step(self, engine, batch)
        cls._iteration = _iteration

    if phase == "epoch":
        paused(SupervisedTrainer, lambda s: s.epoch == 2 and s.iteration == s.epoch_length + 2)
    elif phase == "validation":
        paused(SupervisedEvaluator, lambda s: s.epoch == 2 and s.iteration == 2)
    else:
        save = torch.save
        def torch_save(obj, f, *args, **kwargs):
            save(obj, f, *args, **kwargs)
            if ".last.pt." in str(f) and obj.get("trainer", {}).get("epoch") == 2:
                os.truncate(f, os.path.getsize(f) // 2)
                pause()
        torch.save = torch_save
    sys.exit(cli.main(argv))
""")


@pytest.fixture(scope="module")
def config(synth_2d) -> RunConfig:
    """Three epochs of three steps of a 4/8-channel U-Net on 2D patches, CPU: deterministic kernels."""
    base = tiny_config(synth_2d, 2, epochs=EPOCHS)
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, options={"channels": [4, 8], "strides": [2], "num_res_units": 1}),
        train=dataclasses.replace(base.train, seed=7),
        runtime=dataclasses.replace(base.runtime, device="cpu"),
    )


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("reference")
    train(config, run)
    return run


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(handle)]


def _epoch(path: Path) -> int:
    return int(load_checkpoint(path)["trainer"]["epoch"])


def assert_same_as_reference(run: Path, reference: Path) -> None:
    """Same weights, optimiser moments, metrics and best checkpoint as the uninterrupted run."""
    got, want = load_checkpoint(run / "checkpoints" / "last.pt"), load_checkpoint(reference / "checkpoints" / "last.pt")
    assert got["trainer"]["epoch"] == EPOCHS and got["trainer"]["iteration"] == want["trainer"]["iteration"]
    assert got["network"].keys() == want["network"].keys()
    for name, value in want["network"].items():
        assert torch.equal(got["network"][name], value), f"{name} differs from the uninterrupted run"
    for index, state in want["optimizer"]["state"].items():
        assert torch.equal(got["optimizer"]["state"][index]["exp_avg"], state["exp_avg"])
    assert _rows(run) == _rows(reference)
    assert (got["best_metric"], got["best_epoch"]) == (want["best_metric"], want["best_epoch"])
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["trainer"]["epoch"] == got["best_epoch"]
    assert best["best_metric"] == max(float(row["val_mean_dice"]) for row in _rows(run))


def assert_consistent(run: Path) -> None:
    """A finished run folder: every epoch once, checkpoints of the right epochs, no temporary files."""
    assert [int(row["epoch"]) for row in _rows(run)] == list(range(1, EPOCHS + 1))
    assert _epoch(run / "checkpoints" / "last.pt") == EPOCHS
    assert _epoch(run / "checkpoints" / "last.prev.pt") == EPOCHS - 1
    assert (run / "curves.png").is_file() and (run / "config.json").is_file()
    assert not list(run.rglob(".*.tmp*")), "temporary files left behind"


def _kill_during(phase: str, config: RunConfig, run: Path) -> None:
    """Start ``medseg train`` into ``run``, SIGKILL it once it reaches ``phase``."""
    config_file = run.parent / f"{run.name}-config.json"
    config.save(config_file)
    marker = run.parent / f"{run.name}-{phase}.marker"
    argv = ["-q", "train", "--config", str(config_file), "--out", str(run)]
    child = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(marker), phase, *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, f"medseg train exited early: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "medseg train never reached the pause point"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()


@pytest.mark.parametrize("phase", ["epoch", "validation", "checkpoint"])
def test_kill_9_then_resume_equals_the_uninterrupted_run(phase, config, reference, tmp_path):
    run = tmp_path / "run"
    _kill_during(phase, config, run)
    # what the kill left: epoch 1 is the last completed one, whatever epoch 2 had begun
    assert _epoch(run / "checkpoints" / "last.pt") == 1
    assert [int(row["epoch"]) for row in _rows(run)] == [1]
    if phase == "checkpoint":
        assert list((run / "checkpoints").glob(".last.pt.*.tmp*")), "the killed write left its temporary file"

    assert cli.main(["-q", "train", "--resume", "--out", str(run), "--epochs", str(EPOCHS)]) == 0
    assert_consistent(run)
    assert_same_as_reference(run, reference)


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_unusable_last_checkpoint_falls_back_to_the_previous_one(damage, config, reference, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    last = run / "checkpoints" / "last.pt"
    if damage == "truncated":
        os.truncate(last, last.stat().st_size // 3)
    else:  # a kill between renaming last.pt to last.prev.pt and the new file onto last.pt
        last.unlink()
    with caplog.at_level(logging.WARNING, logger="medseg_monai"):
        result = train(config, run, resume=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(last) in text and "last.prev.pt" in text for text in warnings), warnings
    assert result.epochs_run == EPOCHS  # epoch 3 trained again, from epoch 2's checkpoint
    assert_consistent(run)
    assert_same_as_reference(run, reference)


def test_no_usable_checkpoint_is_a_one_line_error_naming_the_file(config, reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    last = run / "checkpoints" / "last.pt"
    os.truncate(last, 100)
    (run / "checkpoints" / "last.prev.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt") as caught:
        train(config, run, resume=True)
    assert "\n" not in str(caught.value) and str(last) in str(caught.value)
    (run / "checkpoints" / "last.prev.pt").unlink()
    assert cli.main(["-q", "train", "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(last) in err[0] and "last.prev.pt" in err[0], err


def test_checkpoints_hold_random_states_as_tensors_and_plain_values(reference):
    payload = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    (state,) = payload["rng"]["ranks"]
    assert {"python", "numpy", "torch", "generator", "transforms"} <= set(state)
    assert state["transforms"], "the randomised training transforms' states are saved"
    assert isinstance(state["generator"], torch.Tensor) and isinstance(state["numpy"]["keys"], torch.Tensor)
    assert payload["trainer"]["elapsed_s"] == pytest.approx(payload["history"][-1]["elapsed_s"])


def test_resume_of_a_run_that_spent_its_time_budget_trains_nothing_more(config, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    budget_min = last["trainer"]["elapsed_s"] / 60 / 2  # already spent twice over
    longer = dataclasses.replace(
        config, train=dataclasses.replace(config.train, epochs=EPOCHS + 2, time_budget_min=budget_min)
    )
    last["config"]["train"]["time_budget_min"] = budget_min
    torch.save(last, run / "checkpoints" / "last.pt")
    result = train(longer, run, resume=True)
    assert result.epochs_run == EPOCHS
    assert _epoch(run / "checkpoints" / "last.pt") == EPOCHS
