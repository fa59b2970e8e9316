"""The ``medseg`` command line: a thin layer that parses arguments into configs and calls the API.

Heavy imports (torch, MONAI) happen inside the commands so ``medseg --help`` answers at once.
Errors print one line naming the problem (file, value) and exit with status 2 (bad input) or 1
(some cases of a batch failed); any other exception is a bug, reported in one line as an internal
error (status 3) with its traceback in ``medseg-errors.log`` of the output folder (``--debug`` prints it);
an interrupted command exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from medseg_monai.cli.commands import COMMANDS, batch_options, train_config
from medseg_monai.cli.parser import build_parser
from medseg_monai.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    error_message,
    is_expected,
    write_traceback,
)
from medseg_monai.utils import LOG_FORMAT, set_progress

__all__ = ["batch_options", "build_parser", "main", "train_config"]

logger = logging.getLogger("medseg_monai")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    console = not logging.getLogger().handlers  # else logging was configured before (a bundle's logging.conf)
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S")
    if console:  # the console keeps to -q while a run's log file (utils.log_to_file) gets INFO
        for handler in logging.getLogger().handlers:
            handler.setLevel(level)
    logging.getLogger("medseg_monai").setLevel(level)
    set_progress(args.progress or ("off" if args.quiet else "auto"))
    if not args.verbose:  # ignite's engines announce every epoch start/stop at INFO
        logging.getLogger("ignite").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"medseg {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.verbose:
            logger.error("traceback", exc_info=True)
        if is_expected(err):
            print(f"medseg {args.command}: error: {error_message(err)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        where = _report_internal_error(err, args)
        print(
            f"medseg {args.command}: internal error (a bug in medseg-monai, not a problem of the input): "
            f"{type(err).__name__}: {error_message(err)}; traceback in {where}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _report_internal_error(err: BaseException, args: argparse.Namespace) -> str:
    """Write the traceback into the command's output folder (else the temporary folder); where it went."""
    import tempfile

    context = f"medseg {' '.join(sys.argv[1:]) or args.command}"
    for folder in (getattr(args, "output", None), getattr(args, "out", None), Path(tempfile.gettempdir())):
        if folder is None:
            continue
        try:
            return str(write_traceback(err, folder, context))
        except OSError:
            continue
    return "(nowhere: no writable folder)"
