"""The package's layout is what docs/architecture.md says: layers imported downwards only, no import cycle
(imports inside functions and type-only imports included), modules and functions of one job, the inference
settings read in one place, front ends through the API."""

from __future__ import annotations

import ast
import graphlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "medseg_monai"


def _modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every import of every module, wherever it stands (top level, functions, ``if TYPE_CHECKING``), as modules."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(part for part in (base, node.module) if part)
                for alias in node.names:  # "from a import b" where a.b is a module imports that module
                    targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def _layers() -> dict[str, int]:
    """``package or module -> layer`` from the table of docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## Layers") :]
    layers = {}
    for line in section.splitlines():
        row = re.match(r"^\| (\d+) \| (.+?) \|", line)
        if row:
            for name in re.findall(r"`([a-z_]+)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def _unit(module: str) -> str:
    """The first part below the package (``batch`` for ``medseg_monai.batch.runner``), or the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_module_has_a_layer_and_imports_only_downwards():
    modules = _modules()
    layers = _layers()
    unplaced = sorted({_unit(m) for m in modules} - set(layers))
    assert not unplaced, f"docs/architecture.md places no layer for {unplaced}"
    wrong = []
    for source, targets in _imports(modules).items():
        for target in targets:
            a, b = _unit(source), _unit(target)
            if layers[b] > layers[a] or (layers[b] == layers[a] and a != b):
                wrong.append(f"{source} (layer {layers[a]}) imports {target} (layer {layers[b]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle():
    edges = _imports(_modules())
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_modules_and_functions_stay_small_at_the_formatted_width():
    """No module over 400 lines, no function over 80, no line over 120 columns: the size rules hold for the code
    as formatted (``ruff format`` at 120 columns), so they cannot be met by widening lines."""
    long_modules, long_functions, wide = {}, {}, []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(REPO))
        if (count := len(text.splitlines())) > 400:
            long_modules[name] = count
        wide += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if len(line) > 120]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long_functions[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long_modules, long_modules
    assert not long_functions, long_functions
    assert not wide, wide


def test_the_package_is_formatted():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([ruff, "format", "--check", "--quiet", str(PACKAGE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _attribute_reads(path: Path, attr: str) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute) and n.attr == attr]


def test_only_the_inference_plan_reads_the_inference_settings():
    """``config.infer`` is read once, where the InferencePlan is resolved; everything else reads the plan."""
    allowed = {PACKAGE / "inference" / "plan.py"}
    readers = [
        f"{path.relative_to(REPO)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed and "config" not in path.relative_to(PACKAGE).parts[:1]
        for line in _attribute_reads(path, "infer")
    ]
    assert not readers, readers


#: what each front end may import of the package besides itself
FRONT_DOORS = {
    "cli": {"api", "config", "errors", "utils", "bundle", "recipes", "demo"},
    "bundle": {"api", "config", "errors", "utils"},
}
INTERNALS = {"inference", "batch", "training", "models"}


def test_front_ends_go_through_the_api():
    edges = _imports(_modules())
    wrong = []
    for source, targets in edges.items():
        unit = _unit(source)
        for target in targets:
            other = _unit(target)
            if other == unit or target == "medseg_monai":
                continue
            if unit in FRONT_DOORS and other not in FRONT_DOORS[unit]:
                wrong.append(f"{source} imports {target}")
            elif unit in ("recipes", "demo") and other in INTERNALS:
                wrong.append(f"{source} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_private_monai_names_only_in_the_compatibility_module():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "monai":
                offenders += [
                    f"{path.relative_to(REPO)}: {node.module}.{a.name}"
                    for a in node.names
                    if any(p.startswith("_") for p in node.module.split(".") + [a.name])
                ]
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(REPO)}: {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] == "monai" and any(p.startswith("_") for p in a.name.split("."))
                ]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id == "monai":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: monai...{node.attr}")
    assert not offenders, offenders
