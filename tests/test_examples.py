"""The SLURM example scripts: their argument checks, and (slow) the whole one-machine check at 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "examples" / "slurm"


def _bash(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(
        ["bash", str(SLURM / script), *args], capture_output=True, text=True, env={**environ, **(env or {})}
    )


def test_predict_array_needs_its_arguments_and_an_array_task():
    missing = _bash("predict_array.sbatch", "runs/x", "scans/", "masks/")
    assert missing.returncode != 0 and "usage: predict_array.sbatch MODEL INPUT OUTPUT PARTS" in missing.stderr
    no_task = _bash("predict_array.sbatch", "runs/x", "scans/", "masks/", "4")
    assert no_task.returncode != 0 and "SLURM_ARRAY_TASK_ID" in no_task.stderr


def test_torchrun_script_takes_train_or_predict_only():
    wrong = _bash("torchrun_multinode.sbatch", "export", "--model", "runs/x", env={"NODE_COUNT": "1"})
    assert wrong.returncode == 2 and "the command is train or predict, not 'export'" in wrong.stderr
    no_nodes = _bash("torchrun_multinode.sbatch", "train", "--data", "d", "--out", "o")
    assert no_nodes.returncode != 0 and "NODE_COUNT" in no_nodes.stderr


@pytest.mark.slow
def test_local_check_runs_both_scripts_at_two_processes(tmp_path):
    medseg = Path(sys.executable).with_name("medseg")
    if not medseg.exists() or shutil.which("bash") is None:
        pytest.skip("needs bash and the installed medseg command")
    env = {**os.environ, "PYTHON": sys.executable, "MEDSEG": str(medseg)}
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    done = subprocess.run(
        ["bash", str(SLURM / "local_check.sh"), str(tmp_path / "check")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "check" / "slurm_check.json").read_text())
    assert result["cases"] == 24 and result["predict"]["torchrun_equals_array"] is True
    assert result["train"]["best_val_mean_dice"] > 0.5
    killed = result["killed_task"]
    assert (killed["cases_done"], killed["failed"], killed["skipped"]) == (24, 0, 3)
