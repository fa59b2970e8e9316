"""Finding and running the bundles under ``bundles/``: what ``medseg bundle list`` and ``medseg bundle run`` do.

:func:`run_bundle` is ``python -m monai.bundle run`` (MONAI's ``ConfigWorkflow``) with one-line errors: a
failure names the config id that failed, found with the public ``ConfigParser`` API by resolving each
top-level id, dependencies first, inside a ``try``; an override that names no id of the configs is refused
before anything runs (MONAI would add it silently and use nothing of it).
"""

from __future__ import annotations

import dataclasses
import graphlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.bundle.targets import BundleError
from medseg_monai.errors import error_message, is_expected

__all__ = [
    "BASE_CONFIGS",
    "bundle_root_dir",
    "config_files",
    "describe_error",
    "failing_id",
    "find_bundles",
    "resolve_bundle",
    "run_bundle",
]

logger = logging.getLogger(__name__)

#: configs that are merged over another one (as MONAI's multi-GPU configs are): named alone, their base comes first
BASE_CONFIGS = {"multi_gpu_train": "train", "evaluate": "inference"}
#: ids that ``ConfigWorkflow`` runs itself; resolving them again would run the workflow again
_WORKFLOW_IDS = ("run", "initialize", "finalize", "_meta_")


def bundle_root_dir() -> Path:
    """``./bundles`` when it exists, else the ``bundles/`` folder beside the package source."""
    local = Path("bundles")
    return local if local.is_dir() else Path(__file__).resolve().parents[2] / "bundles"


def find_bundles(root: str | Path | None = None) -> list[Path]:
    """Bundle folders (holding ``configs/metadata.json``) directly under ``root``, sorted."""
    root = Path(root) if root else bundle_root_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())


def resolve_bundle(name: str | Path, root: str | Path | None = None) -> Path:
    """A bundle folder from its path or its name under ``root``."""
    path = Path(name)
    if (path / "configs").is_dir():
        return path
    candidate = (Path(root) if root else bundle_root_dir()) / str(name)
    if (candidate / "configs").is_dir():
        return candidate
    known = ", ".join(p.name for p in find_bundles(root)) or "none"
    raise FileNotFoundError(f"bundle {str(name)!r} not found (a folder with configs/); available: {known}")


def config_files(bundle: Path, names: Sequence[str]) -> list[Path]:
    """The files of config ``names`` (merged in order), each delta config preceded by its base unless named."""
    chosen: list[str] = []
    for name in names:
        stem = Path(name).stem if name.endswith((".json", ".yaml", ".yml")) else name
        base = BASE_CONFIGS.get(stem)
        if base and base not in chosen and base not in names:
            chosen.append(base)
        chosen.append(name)
    files = []
    for name in chosen:
        path = bundle / "configs" / (name if name.endswith((".json", ".yaml", ".yml")) else f"{name}.json")
        if not path.is_file():
            known = ", ".join(sorted(f.stem for f in (bundle / "configs").glob("*.json") if f.stem != "metadata"))
            raise FileNotFoundError(f"{path}: config not found; available: {known}")
        files.append(path)
    return files


def _accepted_fields(config: Mapping[str, Any]) -> dict[str, set[str]]:
    """The section fields an override may set: every field of a section a ``RunConfig`` is built from
    (``train.json``'s ``config``), else the fields a section holds, and any inference or runtime setting."""
    from medseg_monai.config import SECTIONS

    builds_run = isinstance(config.get("config"), Mapping) and "run_config" in str(config["config"].get("_target_", ""))
    accepted = {}
    for name, cls in SECTIONS.items():
        if isinstance(config.get(name), Mapping):
            every = {f.name for f in dataclasses.fields(cls)}
            accepted[name] = every if builds_run or name in ("infer", "runtime") else set(config[name])
    return accepted


def _check_overrides(files: Sequence[Path], overrides: Mapping[str, Any], where: str) -> None:
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_files([str(f) for f in files])
    accepted = _accepted_fields(config)
    for key in overrides:
        root, _, field = str(key).partition("#")
        if root in config:
            if root in accepted and field and field.split("#")[0] not in accepted[root]:
                raise BundleError(
                    f"{where}: override --{key}: {root}#{field.split('#')[0]} is not used by these configs "
                    f"({root} takes {', '.join(sorted(accepted[root]))})"
                )
            continue
        sections = [name for name, fields in accepted.items() if root in fields]
        hint = f"; did you mean --{sections[0]}#{root}?" if sections else ""
        raise BundleError(
            f"{where}: override --{key} names no config id{hint} "
            f"(ids: {', '.join(sorted(i for i in config if i != '_meta_'))})"
        )


def run_bundle(
    bundle: str | Path, configs: Sequence[str] = ("train",), overrides: Mapping[str, Any] | None = None
) -> list:
    """``python -m monai.bundle run`` for ``configs`` (merged in order) of a bundle, with one-line errors.

    Args:
        bundle: bundle folder or name under ``bundles/``.
        configs: config names under ``configs/``, e.g. ``("train", "multi_gpu_train")``; ``evaluate`` alone
            is merged over ``inference``, ``multi_gpu_train`` over ``train``.
        overrides: config ids to values, e.g. ``{"dataset_dir": "data/x", "epochs": 2, "infer#overlap": 0.5}``.

    Raises:
        BundleError: naming the config id that failed and why, or an override that names no id.
    """
    from monai.bundle import ConfigWorkflow

    bundle = resolve_bundle(bundle)
    files = config_files(bundle, configs)
    where = "+".join(f.name for f in files)
    overrides = dict(overrides or {})
    _check_overrides(files, overrides, where)
    workflow = None
    try:
        workflow = ConfigWorkflow(
            config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
            meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=str(bundle / "configs" / "logging.conf"),
            workflow_type=None,
            bundle_root=str(bundle),
            **overrides,
        )
        workflow.initialize()
        result = workflow.run()
        workflow.finalize()
        return result
    except KeyboardInterrupt:
        raise
    except Exception as err:
        if not _is_config_problem(err):
            raise  # a bug below the bundle: reported as an internal error, not as a broken config
        key = failing_id(workflow.parser) if workflow is not None else None
        raise BundleError(describe_error(err, where, key)) from err


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (err.__context__ if isinstance(err, RuntimeError) else None)


def _is_config_problem(err: BaseException) -> bool:
    """True when a bundle run failed on its config or input (an id that cannot be built, a bad ``$``
    expression, a target called with wrong arguments, bad input named by our code), False for an
    unexpected error raised inside this package's code, which is a bug."""
    root = list(_chain(err))[-1]
    if is_expected(root):
        return True
    package = Path(__file__).resolve().parents[1]
    tb, frames = root.__traceback__, []
    while tb is not None:
        frames.append(Path(tb.tb_frame.f_code.co_filename).resolve())
        tb = tb.tb_next
    return not any(package in frame.parents for frame in frames)


def _references(node: Any) -> Iterator[str]:
    from monai.bundle import ReferenceResolver

    if isinstance(node, Mapping):
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)
    elif isinstance(node, str):
        yield from ReferenceResolver.match_refs_pattern(node)


def failing_id(parser: Any) -> str | None:
    """The config id whose resolution fails, dependencies first; ``run#0`` (or ``run``) when every other id resolves.

    Uses the public ``ConfigParser`` API on the workflow's parser: ids it already resolved are cached and
    not built again; the ids the workflow runs itself (``run``, ``initialize``, ``finalize``) are not resolved.
    """
    content = parser.get()
    ids = [i for i in content if i not in _WORKFLOW_IDS]
    graph = {i: {ref.split("#")[0] for ref in _references(content[i])} & set(ids) for i in ids}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        order = ids
    for key in order:
        try:
            parser.get_parsed_content(key)
        except Exception:  # the error itself is reported from the run; here only where it arises
            return key
    run = content.get("run")
    return "run#0" if isinstance(run, list) and len(run) == 1 else ("run" if "run" in content else None)


def describe_error(err: BaseException, where: str, key: str | None = None) -> str:
    """One line for a failed bundle run: the config id being built (when known) and the root cause."""
    root, seen = err, {id(err)}
    while True:  # look through MONAI's "Failed to instantiate" wrappers to the error that says what is wrong
        inner = root.__cause__ or (root.__context__ if isinstance(root, RuntimeError) else None)
        if inner is None or id(inner) in seen:
            break
        root = inner
        seen.add(id(root))
    message = error_message(root)
    if isinstance(root, TypeError) and "argument" in message:
        message += " (check the key's arguments against the target's signature: medseg bundle verify)"
    if isinstance(root, (ModuleNotFoundError, ImportError)) or "Cannot locate" in message:
        message += " (expected an importable '_target_' such as medseg_monai.bundle.train_bundle)"
    if key:
        return f"{where}: key {key!r}: {message}"
    return f"{where}: {message}"
