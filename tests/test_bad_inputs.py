"""The bad-input corpus (:mod:`tests.corpus`) run through the ``medseg`` command as a user would.

For every case: the exit status, no traceback, one error line naming the file and the problem (or the
expected warning and outputs), inputs unchanged, no temporary or partial file left behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medseg_monai.cli import main
from medseg_monai.errors import ERROR_LOG_NAME
from tests.corpus import CASES, EXIT_FAILED, Case, Workspace

#: how many cases the corpus holds at least
MIN_CASES = 45


def _hashes(*roots: Path) -> dict[Path, str]:
    """sha256 of every file under ``roots``."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _leftovers(root: Path) -> list[Path]:
    """Hidden, temporary or partial files anywhere under ``root``."""
    return [p for p in root.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


#: a line of the console log (warnings and errors beside the command's own error line)
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@pytest.fixture(scope="module")
def runs(run_2d, run_3d) -> dict[int, Path]:
    """The tiny trained 2D and 3D run folders, shared by every case."""
    return {2: Path(run_2d.run_dir), 3: Path(run_3d.run_dir)}


def test_corpus_is_large_and_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) >= MIN_CASES, f"{len(ids)} cases"
    assert len(set(ids)) == len(ids)
    assert {c.command for c in CASES} >= {"predict", "train", "evaluate", "bundle"}


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case: Case, runs: dict[int, Path], tmp_path: Path, capsys, caplog, monkeypatch):
    ws = Workspace(tmp_path / "case", runs)
    ws.root.mkdir()
    argv = case.build(ws)
    before = _hashes(ws.root, *runs.values())
    if case.patch is not None:
        case.patch(monkeypatch, ws)
    capsys.readouterr()
    caplog.set_level(logging.WARNING)
    console = [h for h in logging.root.handlers if type(h) is logging.StreamHandler]
    for handler in console:  # main() installs its console handler on this test's stderr, as a fresh process would
        logging.root.removeHandler(handler)
    try:
        status = main(argv)
    finally:
        monkeypatch.undo()
        if ws.output.is_dir():
            ws.output.chmod(0o755)
    out, err = capsys.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    report = f"argv: {argv}\nstdout:\n{out}\nstderr:\n{err}\nlog:\n{logged}"

    assert status == case.status, report
    assert "Traceback" not in err + out + logged, report
    assert not any(r.exc_info for r in caplog.records), report
    errors = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    if case.status == EXIT_FAILED and case.command in ("predict", "evaluate"):
        lines = [line for line in out.splitlines() if line.startswith("FAILED")]
        assert len(lines) == 1 and not errors, report
    else:
        lines = errors
        assert len(lines) == (1 if case.status else 0), report
    if case.message:
        assert re.search(case.message, lines[0]), f"{case.message!r} not in {lines[0]!r}\n{report}"
    if case.warning:
        assert re.search(case.warning, logged), f"warning {case.warning!r} not logged\n{report}"

    after = _hashes(ws.root, *runs.values())
    changed = [str(p) for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"inputs changed or removed: {changed}"
    assert not _leftovers(ws.root), f"temporary files left: {_leftovers(ws.root)}"
    assert not list(ws.root.rglob(ERROR_LOG_NAME)), "an expected problem was logged as an internal error"
    for name in case.written:
        path = ws.root / name
        assert path.is_file() and path.stat().st_size > 0, f"{name} not written\n{report}"
    if case.check is not None:
        case.check(ws)


def test_a_broken_file_in_a_batch_gives_no_traceback_on_the_real_stderr(runs: dict[int, Path], tmp_path: Path):
    """As a subprocess, where the log goes to the real stderr: one line per failure, no traceback."""
    ws = Workspace(tmp_path, runs)
    ws.volume("good.nii.gz")
    (ws.inputs / "bad.nii.gz").write_bytes(b"\x89PNG not a volume")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "medseg_monai.cli", *ws.predict(3)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    assert any("bad.nii.gz" in line and "cannot read image" in line for line in result.stderr.splitlines()), (
        result.stderr
    )
    assert "FAILED" in result.stdout and (ws.output / "good.nii.gz").is_file()
