"""Per-case claims, so several processes can share one output folder without a process group.

A process works on a case only while it holds the case's claim: a hidden file ``.NAME.claim`` beside the
mask ``NAME``, holding the owner's pid, hostname, process start time and a random token. Claims are created,
checked, taken over and removed only under an exclusive ``flock`` of the output folder itself, which the
kernel releases when its process dies (``kill -9`` included), so these steps never race and the folder
lock is never stale. A claim is stale, and is taken over, when its owner is on this host and its pid is
no longer running (or now belongs to a process started at another time); a claim from another host is
stale once its file is older than ``foreign_stale_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg_monai.errors import OutputError
from medseg_monai.utils import atomic_write_text

__all__ = ["CLAIM_SUFFIX", "Claims", "claim_path", "process_start_time", "pid_running"]

logger = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"


def claim_path(folder: Path, name: str) -> Path:
    """The claim file of the output ``name`` in ``folder``."""
    return Path(folder) / f".{name}{CLAIM_SUFFIX}"


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat``); ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the command name may hold spaces


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (a killed, not yet reaped zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Claims:
    """The claims this process takes in ``folder`` (one :class:`Claims` per batch; close it when done)."""

    def __init__(self, folder: str | Path, foreign_stale_s: float = 6 * 3600.0):
        self.folder = Path(folder)
        self.foreign_stale_s = foreign_stale_s
        pid = os.getpid()
        self.owner = {
            "pid": pid,
            "host": socket.gethostname(),
            "start_ticks": process_start_time(pid),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "token": secrets.token_hex(8),
        }
        try:
            self._fd: int | None = os.open(self.folder, os.O_RDONLY)
        except OSError as err:
            raise OutputError(f"{self.folder}: cannot open the output folder for locking ({err})") from err
        self.held: set[str] = set()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder lock (blocking): every claim and manifest update happens under it."""
        if self._fd is None:
            raise OutputError(f"{self.folder}: claims already closed")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treated as stale
        return data if isinstance(data, dict) else {}

    def is_stale(self, owner: dict[str, Any], path: Path) -> bool:
        """Whether the claim ``owner`` (read from ``path``) belongs to no running process."""
        if not owner.get("pid") or not owner.get("host"):
            return True
        if owner["host"] != self.owner["host"]:
            try:
                return time.time() - path.stat().st_mtime > self.foreign_stale_s
            except FileNotFoundError:
                return True
        pid = int(owner["pid"])
        if not pid_running(pid):
            return True
        ticks = owner.get("start_ticks")
        return ticks is not None and process_start_time(pid) not in (None, ticks)

    def holder(self, name: str) -> dict[str, Any] | None:
        """The live owner of ``name``'s claim other than this process (read without the lock), else ``None``."""
        path = claim_path(self.folder, name)
        owner = self._read(path)
        if owner is None or owner.get("token") == self.owner["token"] or self.is_stale(owner, path):
            return None
        return owner

    def claim(self, name: str) -> bool:
        """Take the claim of output ``name``: True when this process now holds it, False when another does."""
        path = claim_path(self.folder, name)
        with self.locked():
            owner = self._read(path)
            if owner is not None and owner.get("token") != self.owner["token"]:
                if not self.is_stale(owner, path):
                    return False
                logger.warning(
                    "%s: taking over the stale claim of pid %s on %s (started %s)",
                    path,
                    owner.get("pid"),
                    owner.get("host"),
                    owner.get("since"),
                )
            for leftover in glob.glob(str(path.parent / f".{glob.escape(path.name)}.*.tmp*")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)  # a claim write killed mid-way (claims are written only under the lock)
            try:
                atomic_write_text(path, json.dumps(self.owner) + "\n")
            except OSError as err:
                raise OutputError(f"{path}: cannot write the claim ({err})") from err
        self.held.add(name)
        return True

    def wait(self, name: str, poll_s: float = 0.5, timeout_s: float | None = None) -> bool:
        """Block until this process holds ``name``'s claim (its owner finished or died); False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.claim(name):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def release(self, name: str) -> None:
        """Give up the claim of ``name`` (remove its file if it is still this process's)."""
        path = claim_path(self.folder, name)
        with self.locked():
            owner = self._read(path)
            if owner is not None and owner.get("token") == self.owner["token"]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self.held.discard(name)

    def close(self) -> None:
        """Release every claim still held and the folder handle."""
        for name in sorted(self.held):
            with contextlib.suppress(OSError):
                self.release(name)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
