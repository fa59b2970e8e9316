"""Command-line flags generated from the settings dataclasses: one flag per field, named after it.

``--field-name`` for every field (``--tta-flips``, ``--keep-largest-component``), ``--x/--no-x`` for
booleans, ``Literal`` choices as argparse choices, lists for tuples, JSON for mappings; the names
users typed before (``--tta``, ``--lr``) are kept as aliases on the field. A flag that is not given
leaves the setting alone, so the values read back (:func:`settings_from_args`) are exactly the
changes the user asked for.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from medseg_monai.config.fields import field_specs, parse_override

__all__ = ["BARE_FLAG", "add_override_flag", "add_setting_flags", "override_argument", "settings_from_args"]

#: value of an optional-value flag (``nargs="?"``, like ``--report``) given without a value
BARE_FLAG = ""


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _or_null(item_type: type) -> Any:
    """argparse ``type`` of a field that may be ``None``: the word ``null`` gives ``None``."""

    def convert(text: str) -> Any:
        return None if text == "null" else item_type(text)

    convert.__name__ = getattr(item_type, "__name__", "value")  # argparse names the type in its error messages
    return convert


def add_setting_flags(
    parser: argparse.ArgumentParser, cls: type, section: str, *, title: str | None = None, show_defaults: bool = True
) -> None:
    """Add one flag per field of settings dataclass ``cls``; values land under ``"<section>.<field>"``.

    ``show_defaults=False`` says the default is another object's (a trained run's inference settings), with
    the dataclass default as a new run's.
    """
    group = parser.add_argument_group(title or section)
    for spec in field_specs(cls):
        if not spec.cli:
            continue
        default = (
            f"(default: {spec.default_text})"
            if show_defaults
            else f"(default: the run's; new runs {spec.default_text})"
        )
        default = " " + default
        kwargs: dict[str, Any] = {
            "dest": f"{section}.{spec.name}",
            "default": argparse.SUPPRESS,
            "help": f"{spec.help}{default}".replace("%", "%%"),
        }
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif spec.kind == "mapping":
            kwargs.update(type=_json_object, metavar=spec.metavar or "JSON")
        else:
            kwargs["type"] = _or_null(spec.item_type or str) if spec.nullable else (spec.item_type or str)
            if spec.kind == "tuple":
                kwargs["nargs"] = spec.nargs or spec.length or "+"
            elif spec.nargs is not None:
                kwargs.update(nargs=spec.nargs, const=BARE_FLAG)
            if spec.choices is not None:
                kwargs["choices"] = (*spec.choices, None) if spec.nullable else spec.choices
                if spec.nullable:
                    kwargs["metavar"] = "{" + ",".join(map(str, spec.choices)) + ",null}"
            else:
                kwargs["metavar"] = spec.metavar or spec.name.upper()
        group.add_argument(*spec.flags, **kwargs)


def settings_from_args(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of ``section`` given on the command line, by field name (``--field null`` gives ``None``)."""
    prefix = section + "."
    given = {key[len(prefix) :]: value for key, value in vars(args).items() if key.startswith(prefix)}
    return {key: None if isinstance(value, list) and value == [None] else value for key, value in given.items()}


def override_argument(text: str) -> tuple[str, Any]:
    """argparse ``type`` of ``--set section.field=value`` (the value read as JSON, else kept as text)."""
    try:
        return parse_override(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set expects section.field=value, got {text!r}") from None


def add_override_flag(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set SECTION.FIELD=VALUE``, repeatable, collected in ``args.overrides`` as ``(key, value)`` pairs."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=override_argument,
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help=f"any config field, value as JSON, e.g. {example}".replace("%", "%%"),
    )
