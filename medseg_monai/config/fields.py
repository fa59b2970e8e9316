"""Settings declared once: each field's default, help text and choices live on its dataclass.

A settings dataclass declares every field with :func:`setting`, which keeps the help text (and the
few command-line details a field needs: extra flag names, ``nargs``) in ``dataclasses.field(metadata=...)``.
Choices come from ``Literal`` annotations. :func:`field_specs` reads it all back, and from there come

- the ``medseg`` flags (:mod:`medseg_monai.config.flags` builds one flag per field),
- the check that a ``Literal`` field holds one of its values (:func:`check_choices`),
- the ``Attributes:`` section of the class docstring (:func:`documented`) and the configuration
  reference page of the documentation.

Adding a setting is one edit: a field with its default and help text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from medseg_monai.errors import ConfigError

__all__ = [
    "FieldSpec",
    "check_choices",
    "documented",
    "field_specs",
    "from_mapping",
    "parse_override",
    "replace_fields",
    "setting",
    "to_jsonable",
]

T = TypeVar("T")
MISSING = dataclasses.MISSING


def setting(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Any = MISSING,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    nargs: str | int | None = None,
    metavar: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field carrying its documentation.

    Args:
        default, default_factory: as ``dataclasses.field``.
        help: one or two sentences for ``--help``, the docstring and the reference page.
        flag: command-line flag name when it is not ``--field-name`` (e.g. ``--network`` for ``model.name``).
        aliases: further flag names accepted for the field (names users typed before).
        nargs: ``nargs`` for tuple fields whose empty value means something (``"*"``).
        metavar: how the value is shown in ``--help``.
        cli: False for fields that have no flag of their own.
    """
    metadata = {"help": help, "flag": flag, "aliases": tuple(aliases), "nargs": nargs, "metavar": metavar, "cli": cli}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """Everything known about one settings field, read from its declaration.

    ``kind`` is ``bool``, ``tuple`` (homogeneous ``item_type`` items, ``length`` when fixed),
    ``mapping`` (a JSON object) or ``scalar`` (``item_type`` value); ``nullable`` when ``None`` is allowed.
    """

    name: str
    help: str
    default: Any
    kind: str
    item_type: type | None
    choices: tuple[Any, ...] | None
    nullable: bool
    length: int | None
    flags: tuple[str, ...]
    nargs: str | int | None
    metavar: str | None
    cli: bool

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def default_text(self) -> str:
        """The default as a JSON-like literal (``null`` for ``None``), for help texts and the reference page."""
        if self.required:
            return "required"
        return json.dumps(to_jsonable(self.default))


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        return (args[0] if len(args) == 1 else hint), nullable
    return hint, False


def _literal_choices(hint: Any) -> tuple[Any, ...] | None:
    return tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else None


def _describe(hint: Any) -> tuple[str, type | None, tuple[Any, ...] | None, int | None]:
    """``(kind, item_type, choices, length)`` of a (non-optional) annotation."""
    origin = typing.get_origin(hint)
    choices = _literal_choices(hint)
    if choices is not None:
        return "scalar", type(choices[0]), choices, None
    if hint is bool:
        return "bool", bool, None, None
    if origin is tuple:
        args = typing.get_args(hint)
        variable = len(args) == 2 and args[1] is Ellipsis
        item = args[0]
        item_choices = _literal_choices(item)
        item_type = type(item_choices[0]) if item_choices else item
        return "tuple", item_type, item_choices, None if variable else len(args)
    if origin in (Mapping, dict) or hint in (dict, Mapping):
        return "mapping", None, None, None
    return "scalar", hint if isinstance(hint, type) else None, None, None


@functools.cache
def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """One :class:`FieldSpec` per field of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with setting(help=...)")
        hint, nullable = _unwrap_optional(hints[field.name])
        kind, item_type, choices, length = _describe(hint)
        if field.default is not MISSING:
            default = field.default
        elif field.default_factory is not MISSING:
            default = field.default_factory()
        else:
            default = MISSING
        primary = meta["flag"] or "--" + field.name.replace("_", "-")
        specs.append(
            FieldSpec(
                name=field.name,
                help=meta["help"],
                default=default,
                kind=kind,
                item_type=item_type,
                choices=choices,
                nullable=nullable,
                length=length,
                flags=(primary, *meta["aliases"]),
                nargs=meta["nargs"],
                metavar=meta["metavar"],
                cli=meta["cli"],
            )
        )
    return tuple(specs)


def _alternatives(choices: tuple[Any, ...]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def check_choices(obj: Any) -> None:
    """Raise ``ValueError`` naming the field when a ``Literal``-typed field holds another value."""
    for spec in field_specs(type(obj)):
        if spec.choices is None:
            continue
        value = getattr(obj, spec.name)
        values = value if spec.kind == "tuple" and value is not None else (value,)
        for item in values:
            if item is None and spec.nullable:
                continue
            if isinstance(item, bool) or item not in spec.choices:
                raise ConfigError(f"{spec.name} must be {_alternatives(spec.choices)}, got {item!r}")


def documented(cls: type[T]) -> type[T]:
    """Append an ``Attributes:`` section built from the fields' help texts to the class docstring."""
    lines = [f"    {spec.name}: {spec.help} Default ``{spec.default_text}``." for spec in field_specs(cls)]
    cls.__doc__ = (
        (cls.__doc__ or cls.__name__).rstrip()
        + "\n\n    Attributes:\n"
        + "\n".join("    " + line for line in lines)
        + "\n"
    )
    return cls


def to_jsonable(value: Any) -> Any:
    """Tuples to lists and mapping keys to strings, recursively (what ``json.dumps`` writes back)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def from_mapping(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    """Build settings dataclass ``cls`` from JSON-like ``raw``; unknown keys raise ``ValueError`` naming them."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"{where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {where}; known: {sorted(names)}")
    kwargs = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Turn JSON values back into the annotated types (lists -> tuples, nested dataclasses)."""
    if value is None:
        return None
    hint, _ = _unwrap_optional(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a list, got {value!r}")
        item_type = typing.get_args(hint)[0]
        return tuple(_coerce(item_type, v, where) for v in value)
    target = type(_literal_choices(hint)[0]) if _literal_choices(hint) else hint
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"section.field=value"`` -> ``("section.field", value)``, the value read as JSON (else kept as text).

    >>> parse_override('train.epochs=3')
    ('train.epochs', 3)
    >>> parse_override('model.name=unetpp')
    ('model.name', 'unetpp')
    """
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"expected section.field=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def replace_fields(obj: T, changes: Mapping[str, Any], where: str) -> T:
    """A copy of settings dataclass ``obj`` with ``changes`` (JSON-like values, coerced like a loaded file)."""
    raw = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - set(raw))
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {where}; known: {sorted(raw)}")
    return from_mapping(type(obj), to_jsonable({**raw, **changes}), where)
