"""Regenerate docs/cli.md from the ``medseg`` argument parser itself.

    python docs/make_cli_reference.py

Each subcommand's ``--help`` is rendered at a fixed width (``COLUMNS``) so the page does not depend on
the terminal. The documentation build (docs/conf.py) runs the same ``render()``; tests/test_docs.py checks
the committed page is current.
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from pathlib import Path

from medseg_monai.cli import build_parser

TARGET = Path(__file__).with_name("cli.md")
WIDTH = 100
COMMANDS = ("synth", "train", "predict", "evaluate", "demo", "run", "bundle")


@contextmanager
def _fixed_terminal():
    """``COLUMNS`` set to :data:`WIDTH` and colour off while help is formatted; restored afterwards."""
    saved = {key: os.environ.get(key) for key in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=str(WIDTH), NO_COLOR="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _subcommands(
    parser: argparse.ArgumentParser,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser], dict[str, str]]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return parser, dict(action.choices), summaries


def render() -> str:
    with _fixed_terminal():
        parser, commands, summaries = _subcommands(build_parser())
        missing = [name for name in COMMANDS if name not in commands]
        if missing:
            raise RuntimeError(f"medseg has no subcommand(s) {missing}; update COMMANDS")
        names = list(COMMANDS) + sorted(set(commands) - set(COMMANDS))
        lines = [
            "# Command-line reference",
            "",
            "`medseg COMMAND --help` prints the same text. `medseg train` and `medseg predict` take one flag per",
            "setting; what each setting means is on the [configuration page](configuration.md).",
            "",
            "Habits every command shares: `-o/--output` names what it writes (`--out` still works), `medseg predict`",
            "reads `-i/--input`, `-q` keeps the console to warnings, errors and the final summary, `--progress`",
            "draws bars on a terminal and writes one line per epoch or case elsewhere, `--version` prints the",
            "version. `medseg train` refuses a folder that already holds a run unless `--resume` or `--overwrite`.",
            "",
            "| exit status | meaning |",
            "|---|---|",
            "| 0 | everything succeeded |",
            "| 1 | the command ran but part of it failed (a case of a `predict` batch or of `evaluate`, a bundle of "
            "`bundle verify`, the demo's accuracy target) |",
            "| 2 | bad arguments or input: one line on standard error names the file or value (`--debug` adds the "
            "traceback) |",
            "| 3 | internal error, a bug of medseg-monai: one line, the traceback in `medseg-errors.log` of the output "
            "folder |",
            "| 130 | interrupted (Ctrl-C) |",
            "",
            "This page is generated from the argument parser (`python docs/make_cli_reference.py`); do not edit it.",
            "",
            "## medseg",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name in names:
            summary = summaries.get(name, "")
            lines += [f"## medseg {name}", ""]
            if summary:
                lines += [summary[0].upper() + summary[1:] + ".", ""]
            lines += ["```text", commands[name].format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
