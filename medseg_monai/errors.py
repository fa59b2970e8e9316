"""The package's exceptions for expected problems: bad input, bad settings, unusable checkpoints or outputs.

Every one names the file or value at fault in a one-line message. The ``medseg`` command prints them as
``medseg COMMAND: error: ...`` with exit status 2 (:data:`EXIT_BAD_INPUT`); any other exception is a
bug in this package, reported as an internal error (:data:`EXIT_INTERNAL_ERROR`) with its traceback
written to a log file. They derive from the built-in types callers already catch (``ValueError``,
``OSError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import datetime
import traceback
from pathlib import Path

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED_CASES",
    "EXIT_INTERNAL_ERROR",
    "EXIT_INTERRUPTED",
    "ERROR_LOG_NAME",
    "EXIT_OK",
    "InputError",
    "MedsegError",
    "OutputError",
    "error_message",
    "write_traceback",
    "is_expected",
    "root_cause",
]

#: exit status of every ``medseg`` command
EXIT_OK, EXIT_FAILED_CASES, EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: where internal errors' tracebacks go, in the command's output folder
ERROR_LOG_NAME = "medseg-errors.log"


class MedsegError(Exception):
    """An expected problem with what the user gave; the message names the file or value."""


class InputError(MedsegError, ValueError):
    """An image, mask, datalist or folder that cannot be used as it is."""


class ConfigError(MedsegError, ValueError):
    """A setting, config file or argument with an invalid value."""


class CheckpointError(InputError):
    """A checkpoint or exported model that is missing, corrupt, foreign or of an unsupported version."""


class OutputError(MedsegError, OSError):
    """An output that cannot be written: a read-only folder, a path that is a file, a full disk."""


def root_cause(err: BaseException) -> BaseException:
    """The exception that says what went wrong, looking through MONAI's ``RuntimeError("applying transform ...")``
    and ignite's wrappers (a ``RuntimeError`` raised ``from`` another exception)."""
    while isinstance(err, RuntimeError) and err.__cause__ is not None:
        err = err.__cause__
    return err


def is_expected(err: BaseException) -> bool:
    """True for problems of the input or the environment (ours, ``OSError`` such as a missing file or a full disk,
    running out of memory); False for everything else, which is a bug in this package or a library it calls."""
    root = root_cause(err)
    # running out of memory is the machine's limit, not a bug (torch.cuda.OutOfMemoryError is a RuntimeError)
    return isinstance(root, (MedsegError, OSError, MemoryError)) or type(root).__name__ == "OutOfMemoryError"


def error_message(err: BaseException) -> str:
    """One line describing ``err`` (its root cause through MONAI's wrappers)."""
    root = root_cause(err)
    text = str(root).strip()
    return text.splitlines()[0] if text else type(root).__name__


def write_traceback(err: BaseException, folder: str | Path, context: str) -> Path:
    """Append ``err``'s traceback, with ``context`` (the command or case), to ``folder``'s error log; returns its
    path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / ERROR_LOG_NAME
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"--- {stamp} {context}\n")
        handle.write("".join(traceback.format_exception(err)))
    return log
