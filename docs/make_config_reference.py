"""Regenerate docs/configuration.md from the settings dataclasses' own field declarations.

    python docs/make_config_reference.py

The documentation build (docs/conf.py) runs the same ``render()``; tests/test_docs.py checks the
committed page is current.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from medseg_monai.config import CONFIG_VERSION, SECTIONS, BatchOptions, InputChecks, field_specs

TARGET = Path(__file__).with_name("configuration.md")


def _type_text(spec) -> str:
    if spec.choices is not None:
        text = " \\| ".join(f"`{c}`" for c in spec.choices)
    elif spec.kind == "tuple":
        text = f"list of {spec.item_type.__name__}" + (f" ({spec.length})" if spec.length else "")
    elif spec.kind == "mapping":
        text = "JSON object"
    else:
        text = spec.item_type.__name__ if spec.item_type else "value"
    return text + (" or `null`" if spec.nullable else "")


def _table(section: str | None, cls: type) -> list[str]:
    summary = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", (inspect.getdoc(cls) or "").splitlines()[0])  # RST roles -> code
    title = f"`{section}` ({cls.__name__})" if section else cls.__name__
    lines = [f"## {title}", "", summary, "", "| field | type | default | flag | meaning |", "|---|---|---|---|---|"]
    for spec in field_specs(cls):
        name = f"{section}.{spec.name}" if section else spec.name
        flags = [f for name in spec.flags for f in ((name, "--no-" + name[2:]) if spec.kind == "bool" else (name,))]
        flag = ", ".join(f"`{f}`" for f in flags) if spec.cli else "-"
        text = spec.help.replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_text(spec)} | `{spec.default_text}` | {flag} | {text} |")
    return lines + [""]


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "One `RunConfig` holds five sections. It is saved as `config.json` in every run folder and embedded in every",
        "checkpoint. Every field is set the same three ways: on the command line, with the flag of the column *flag*",
        "(`medseg train` takes the `data`, `model`, `train` and `runtime` flags, "
        "plus `--set section.field=value` with a JSON value",
        "for any field and `--config FILE`; `medseg predict` takes the `infer` and `runtime` flags, the batch options",
        "and the input checks; a flag given `null` sets `null`); in Python, as a keyword of the section's dataclass;",
        "and in a bundle, as an override of its config sections (`--train#epochs 5`, `--infer#overlap 0.5`,",
        "`--runtime#precision fp32`).",
        "Fields left `null` that depend on the data (2D or 3D, patch size, channels, label values, spacing) are",
        "resolved from the training data when training starts, and `config.json` records the resolved values.",
        "",
        "The `runtime` section (device, precision, memory format) is shared: training runs with it, and a model",
        "loaded for prediction starts from its run's, which `medseg predict --device/--precision/--memory-format`",
        "(or `runtime=` in Python) change. Configs written before version 2 kept these fields in `train` and",
        "`infer`; they still load, with the fields moved into `runtime` (where both set a field, `infer`'s value,",
        "with a warning when they differ).",
        "",
        f"This page is generated from the dataclasses (`python docs/make_config_reference.py`; config version "
        f"{CONFIG_VERSION}); do not edit it.",
        "",
    ]
    for section, cls in SECTIONS.items():
        lines += _table(section, cls)
    lines += [
        "`medseg predict` takes the `infer` and `runtime` flags (changes to the run's own settings), the batch",
        "options and the input checks (what happens to odd images: NaN voxels, 4D volumes, huge headers):",
        "",
    ]
    lines += _table(None, BatchOptions)
    lines += _table(None, InputChecks)
    return "\n".join(lines)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
