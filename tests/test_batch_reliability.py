"""Batch reliability: ``kill -9`` at random points then a rerun gives an uninterrupted run's masks and manifest,
two processes share one output folder (claims, stale-claim takeover, one record per case), and a long 2D
batch keeps its memory and per-case time flat (slow).

The kill and concurrency checks run ``medseg predict`` (``medseg_monai.cli.main``) in processes forked from
one ``python -c`` driver that imported the package once; a killed run has the mask writer, ``os.replace``
or the manifest's text write wrapped to ``os.kill(os.getpid(), 9)`` at the Nth call.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg_monai.batch import MANIFEST_NAME
from medseg_monai.batch.claims import Claims, claim_path, process_start_time
from tests.helpers import REPO, predict_batch, threshold_predictor

#: record fields that depend on when a case ran, and the status that says which run wrote the mask
TIMING = ("seconds", "stage_seconds", "finished", "mtime_ns")

DRIVER = r"""
import json, os, pathlib, sys
import torch
torch.set_num_threads(1)
from medseg_monai.cli import main
import medseg_monai.io.writers as writers

spec = json.loads(sys.argv[1])

def arm(kind, n):
    calls = [0]
    def hit():
        calls[0] += 1
        return calls[0] == n
    if kind in ("before_replace", "after_replace"):
        real = os.replace
        def replace(src, dst):
            if kind == "before_replace" and hit():
                os.kill(os.getpid(), 9)
            real(src, dst)
            if kind == "after_replace" and hit():
                os.kill(os.getpid(), 9)
        os.replace = replace
    elif kind == "partial_mask":
        real_png = writers.MASK_WRITERS["png"]
        def png(mask, source, geometry, tmp):
            real_png(mask, source, geometry, tmp)
            if hit():
                data = pathlib.Path(tmp).read_bytes()
                pathlib.Path(tmp).write_bytes(data[: len(data) // 2])
                os.kill(os.getpid(), 9)
        writers.MASK_WRITERS["png"] = png
    elif kind == "partial_manifest":
        real_text = pathlib.Path.write_text
        def write_text(self, text, *args, **kw):
            if "predict_manifest" in self.name and hit():
                real_text(self, text[: len(text) // 2])
                os.kill(os.getpid(), 9)
            return real_text(self, text, *args, **kw)
        pathlib.Path.write_text = write_text

def child(out, kill, log, gate):
    if gate is not None:
        os.read(gate, 1)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
    if kill:
        arm(*kill)
    try:
        code = main(["-q", "predict", "--model", spec["model"], "--input", spec["input"], "--output", out, "--report"])
    except BaseException:
        import traceback; traceback.print_exc()
        code = 99
    sys.stdout.flush()
    os._exit(code)

def start(out, kill=None, log=None, gate=None):
    pid = os.fork()
    if pid == 0:
        child(out, kill, log, gate)
    return pid

def wait(pid):
    status = os.waitpid(pid, 0)[1]
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

report = {}
if spec["mode"] == "kill":
    report["reference"] = wait(start(spec["reference"]))
    report["runs"] = []
    for out, kill in spec["scenarios"]:
        report["runs"].append([wait(start(out, kill)), wait(start(out))])
else:
    read, write = os.pipe()
    kills = spec.get("kills") or [None] * len(spec["logs"])
    pids = [start(spec["output"], kill, log=log, gate=read) for log, kill in zip(spec["logs"], kills)]
    os.write(write, b"x" * len(pids))
    report["codes"] = [wait(pid) for pid in pids]
print("REPORT " + json.dumps(report))
"""


def drive(spec: dict, timeout: float = 240) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("REPORT ")][-1]
    return json.loads(line.removeprefix("REPORT "))


def png_folder(synth_2d: Path, folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    sources = sorted(p for p in synth_2d.glob("*.png") if not p.stem.endswith("_mask"))
    for i in range(n):  # more cases than the fixture has: repeat its images under new names
        (folder / f"case_{i:03d}.png").write_bytes(sources[i % len(sources)].read_bytes())
    return folder


def case_records(out: Path) -> list[dict]:
    """The manifest's records without timing fields; ``written``/``skipped`` both mean the mask is done."""
    records = json.loads((out / MANIFEST_NAME).read_text())["cases"]
    return [
        {
            **{k: v for k, v in r.items() if k not in TIMING},
            "status": "done" if r["status"] in ("written", "skipped") else r["status"],
        }
        for r in records
    ]


def assert_same_outputs(out: Path, reference: Path) -> None:
    names = sorted(p.name for p in reference.iterdir() if p.suffix in (".png", ".json") and p.name != MANIFEST_NAME)
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".json") and p.name != MANIFEST_NAME) == names
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    ref = [{**r, "input": Path(r["input"]).name, "output": Path(r["output"]).name} for r in case_records(reference)]
    got = [{**r, "input": Path(r["input"]).name, "output": Path(r["output"]).name} for r in case_records(out)]
    assert got == ref
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["status"] == "finished" and manifest["summary"]["cases_done"] == len(ref)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporaries or claims left behind"


def test_kill_9_at_random_points_then_rerun_equals_an_uninterrupted_run(run_2d, synth_2d, tmp_path):
    n = 4
    inputs = png_folder(synth_2d, tmp_path / "in", n)
    # each an os.replace, at least: the first and the last manifest save, n claims, n masks, n label files, the report
    replaces = 3 * n + 3
    rng = random.Random(20261202)
    kills = [("partial_mask", 1), ("partial_mask", 3), ("partial_manifest", 1), ("partial_manifest", 2)]
    kills += [(rng.choice(["before_replace", "after_replace"]), rng.randint(1, replaces)) for _ in range(8)]
    scenarios = [[str(tmp_path / f"kill{i}"), list(kill)] for i, kill in enumerate(kills)]
    spec = {
        "mode": "kill",
        "model": str(run_2d.run_dir),
        "input": str(inputs),
        "reference": str(tmp_path / "ref"),
        "scenarios": scenarios,
    }
    report = drive(spec)
    assert report["reference"] == 0
    for (out, kill), (killed, rerun) in zip(scenarios, report["runs"]):
        assert (killed, rerun) == (-9, 0), (kill, killed, rerun)
        assert_same_outputs(Path(out), tmp_path / "ref")


def test_two_processes_share_one_folder(run_2d, synth_2d, tmp_path):
    n = 16
    inputs = png_folder(synth_2d, tmp_path / "in", n)
    logs = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    ref = drive(
        {
            "mode": "kill",
            "model": str(run_2d.run_dir),
            "input": str(inputs),
            "reference": str(tmp_path / "ref"),
            "scenarios": [],
        }
    )
    assert ref["reference"] == 0
    report = drive(
        {
            "mode": "pair",
            "model": str(run_2d.run_dir),
            "input": str(inputs),
            "output": str(tmp_path / "out"),
            "logs": logs,
        }
    )
    assert report["codes"] == [0, 0]
    written = [int(Path(log).read_text().split(" written")[0].split()[-1]) for log in logs]
    assert sum(written) == n and min(written) > 0, written  # every case predicted once, by one of the two
    assert [r["index"] for r in case_records(tmp_path / "out")] == list(range(n))
    assert_same_outputs(tmp_path / "out", tmp_path / "ref")
    # one of the two killed inside its third mask write, holding that case's claim: the other takes the claim
    # over (no claim file is left) and finishes the batch alone
    logs = [str(tmp_path / "c.txt"), str(tmp_path / "d.txt")]
    report = drive(
        {
            "mode": "pair",
            "model": str(run_2d.run_dir),
            "input": str(inputs),
            "output": str(tmp_path / "out2"),
            "logs": logs,
            "kills": [["partial_mask", 3], None],
        }
    )
    assert report["codes"] == [-9, 0]
    assert_same_outputs(tmp_path / "out2", tmp_path / "ref")


def write_pngs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((24, 20)) * 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return sorted(folder.glob("*.png"))


def fake_claim(folder: Path, name: str, pid: int, ticks: int | None, host: str | None = None) -> Path:
    path = claim_path(folder, name)
    path.write_text(
        json.dumps({"pid": pid, "host": host or socket.gethostname(), "start_ticks": ticks, "token": f"t{pid}"})
    )
    return path


def test_claims_held_by_a_live_process_wait_and_stale_ones_are_taken_over(tmp_path):
    sources = write_pngs(tmp_path / "in", 4)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = subprocess.Popen(["sleep", "30"])
    try:
        fake_claim(out, "img0.png", dead.pid, None)  # killed process: pid gone
        fake_claim(out, "img1.png", holder.pid, process_start_time(holder.pid))  # alive: wait for it
        fake_claim(out, "img2.png", 1, (process_start_time(1) or 0) + 12345)  # pid reused by another process
        fake_claim(out, "img3.png", holder.pid, None, host="elsewhere.example")  # another host, fresh: alive
        os.utime(claim_path(out, "img3.png"), (time.time() - 7 * 3600,) * 2)  # ... but 7 h old: stale
        threading.Timer(1.5, holder.kill).start()
        start = time.perf_counter()
        results = predict_batch(threshold_predictor(2, patch=(16, 16)), sources, out)
        waited = time.perf_counter() - start
    finally:
        holder.kill()
        holder.wait()
    assert [r.status for r in results] == ["written"] * 4 and [r.input.name for r in results] == [
        p.name for p in sources
    ]
    assert waited >= 1.0  # img1 was left to its holder until that process died
    assert [r["index"] for r in json.loads((out / MANIFEST_NAME).read_text())["cases"]] == [0, 1, 2, 3]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_claims_unit(tmp_path):
    mine, other = Claims(tmp_path), Claims(tmp_path)
    try:
        assert mine.claim("a.png") and mine.claim("a.png")  # re-entrant for its owner
        assert not other.claim("a.png") and other.holder("a.png")["token"] == mine.owner["token"]
        mine.release("a.png")
        assert not claim_path(tmp_path, "a.png").exists() and other.claim("a.png")
        assert other.wait("a.png", poll_s=0.01) is not False  # its own claim: immediate
        assert not mine.wait("a.png", poll_s=0.01, timeout_s=0.05)
    finally:
        mine.close()
        other.close()
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_soak_2d_memory_and_time_stay_flat(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from soak_2d import run_soak
    finally:
        sys.path.remove(str(REPO / "bench"))
    figures = run_soak(300, tmp_path, plot=None)
    assert figures["rss_growth_fraction"] < 0.10, figures
    assert figures["time_ratio"] < 1.5, figures
