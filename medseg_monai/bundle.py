"""What the MONAI bundles under ``bundles/`` instantiate, and the ``medseg bundle`` helpers.

A bundle config only wires these functions together (``"_target_": "medseg_monai.bundle...."``), so
``python -m monai.bundle run`` trains, predicts and evaluates with the same :class:`RunConfig`,
:func:`~medseg_monai.engines.train.train` and :class:`~medseg_monai.engines.Predictor` as the CLI::

    configs/train.json      run_config(...) -> train_bundle(...)  -> models/model.pt + models/config.json
    configs/inference.json  load_predictor(...) -> predict_bundle(...)  -> masks in the source format
    configs/evaluate.json   load_predictor(...) -> evaluate_bundle(...) -> metrics CSV + summary JSON

``models/model.pt`` is the best epoch's network ``state_dict`` (what ``monai.bundle ckpt_export``
loads into ``network_def``); ``models/config.json`` is the resolved run configuration it needs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import re
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.config import RunConfig
from medseg_monai.utils import atomic_path, atomic_write_text, error_message

__all__ = [
    "BUNDLE_FILES",
    "METADATA_REQUIRED",
    "TENSOR_REQUIRED",
    "BundleError",
    "bundle_root_dir",
    "evaluate_bundle",
    "find_bundles",
    "load_predictor",
    "network_from_config",
    "predict_bundle",
    "resolve_bundle",
    "run_bundle",
    "run_config",
    "train_bundle",
    "verify_bundle",
]

logger = logging.getLogger(__name__)

# files every bundle ships (weights under models/ are produced by training, never committed)
BUNDLE_FILES = (
    "configs/metadata.json",
    "configs/train.json",
    "configs/multi_gpu_train.json",
    "configs/inference.json",
    "configs/evaluate.json",
    "configs/logging.conf",
    "docs/README.md",
    "LICENSE",
)
RUNNABLE_CONFIGS = ("train", "inference", "evaluate")
# MONAI bundle specification (meta_schema 0.8.x): required metadata keys and their JSON types
METADATA_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "version": str,
    "changelog": dict,
    "monai_version": str,
    "pytorch_version": str,
    "numpy_version": str,
    "required_packages_version": dict,
    "task": str,
    "description": str,
    "authors": (str, list),
    "copyright": str,
    "network_data_format": dict,
}
TENSOR_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "format": str,
    "modality": str,
    "num_channels": int,
    "spatial_shape": list,
    "dtype": str,
    "value_range": list,
    "is_patch_data": bool,
    "channel_def": dict,
}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_SPECIAL_KEYS = ("_target_", "_disabled_", "_requires_", "_desc_", "_mode_")


class BundleError(ValueError):
    """A bundle that cannot run as configured; the message names the file/key and the problem."""


# ---------------------------------------------------------------------- instantiated by the configs
def run_config(
    dataset_dir: str | None,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    infer: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of a bundle's ``train.json`` sections, training on ``dataset_dir``.

    Args:
        dataset_dir: dataset root in any supported layout, or a datalist ``.json``.
        data, model, train, infer: the config sections as plain mappings (same fields as ``config.json``).

    Raises:
        BundleError: ``dataset_dir`` missing, or a section holds an unknown field or a bad value.
        FileNotFoundError: ``dataset_dir`` does not exist.
    """
    if not dataset_dir:
        raise BundleError("dataset_dir is required: pass --dataset_dir DIR (a dataset folder or a datalist .json)")
    path = Path(str(dataset_dir)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset_dir {path}: no such folder or file")
    key = "datalist" if path.suffix.lower() == ".json" else "data_dir"
    raw = {"data": {**dict(data), key: str(path)}, "model": dict(model), "train": dict(train), "infer": dict(infer or {})}
    try:
        return RunConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise BundleError(f"train.json sections data/model/train/infer: {err}") from None


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_bundle(config: RunConfig, run_dir: str | Path, model_dir: str | Path, resume: bool = False):
    """Train into ``run_dir`` and export the best weights to ``model_dir/model.pt`` (+ ``config.json``).

    Under ``torchrun`` every process trains; only rank 0 writes. Returns the
    :class:`~medseg_monai.engines.train.TrainResult`.
    """
    import torch

    from medseg_monai.engines.checkpoint import load_checkpoint
    from medseg_monai.engines.train import train

    result = train(config, run_dir, resume=resume)
    if not _is_main_process():
        return result
    payload = load_checkpoint(result.best_checkpoint)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / "model.pt") as tmp:
        torch.save(payload["network"], tmp)
    RunConfig.from_dict(payload["config"]).save(model_dir / "config.json")
    summary = {"best_metric": result.best_metric, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "run_dir": str(result.run_dir)}
    atomic_write_text(model_dir / "training_summary.json", json.dumps(summary, indent=2) + "\n")
    logger.info("best validation mean Dice %.4f at epoch %d -> %s", result.best_metric, result.best_epoch, model_dir / "model.pt")
    return result


def _trained_config(config: str | Path | RunConfig) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model config; run configs/train.json first (it writes models/model.pt and models/config.json)")
    return RunConfig.load(path)


def network_from_config(config: str | Path | RunConfig):
    """The untrained network of a run configuration (a ``config.json`` path or a :class:`RunConfig`), in eval mode."""
    from medseg_monai.networks import build_network

    return build_network(_trained_config(config), load_pretrained=False).eval()


def load_predictor(checkpoint: str | Path, config: str | Path | RunConfig, infer: Mapping[str, Any] | None = None):
    """A :class:`~medseg_monai.engines.Predictor` from ``models/model.pt`` and ``models/config.json``.

    ``infer`` overrides fields of the trained ``infer`` section (``overlap``, ``device``, ...); ``None``
    values keep the trained setting.
    """
    from medseg_monai.engines.predictor import Predictor

    run = _trained_config(config)
    changes = {f"infer.{k}": v for k, v in (infer or {}).items() if v is not None}
    try:
        run = run.override(changes)
    except ValueError as err:
        raise BundleError(f"inference settings: {err}") from None
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: model weights not found; run configs/train.json first")
    return Predictor.from_checkpoint(checkpoint, config=run)


def predict_bundle(predictor, inputs: str | Sequence[str] | None, output_dir: str | Path, overwrite: bool = False) -> list:
    """Write one mask per input (file, folder, glob or list) into ``output_dir``; see :func:`~medseg_monai.engines.run_batch`.

    Raises:
        BundleError: no inputs given, or some cases failed (after the batch went on past them).
    """
    if not inputs:
        raise BundleError("dataset_dir is required: pass --dataset_dir with the images to segment (file, folder, glob or list)")
    from medseg_monai.config import BatchOptions
    from medseg_monai.engines import failures, run_batch

    results = run_batch(predictor, inputs, output_dir, BatchOptions(overwrite=overwrite, progress=False))
    failed = failures(results)
    written = sum(r.status == "written" for r in results)
    logger.info("%d written, %d skipped, %d failed -> %s", written, len(results) - written - len(failed), len(failed), output_dir)
    if failed:
        raise BundleError(f"{len(failed)} of {len(results)} cases failed, first: {failed[0].error}")
    return results


def evaluate_bundle(predictor, dataset_dir: str | Path | None, output_dir: str | Path, surface: bool = False, overwrite: bool = True):
    """Predict every image of a labelled dataset and score it against its masks.

    Writes ``output_dir/predictions/``, ``output_dir/metrics_per_case.csv`` and
    ``output_dir/metrics_summary.json``; returns the :class:`~medseg_monai.evaluation.EvaluationResult`.
    """
    from medseg_monai.data.datalist import discover_pairs
    from medseg_monai.evaluation import evaluate_folders

    if not dataset_dir:
        raise BundleError("dataset_dir is required: pass --dataset_dir with a labelled dataset (images and masks)")
    pairs = discover_pairs(dataset_dir)
    output_dir = Path(output_dir)
    pred_dir = output_dir / "predictions"
    predict_bundle(predictor, [p["image"] for p in pairs], pred_dir, overwrite=overwrite)
    names = dict(zip(predictor.output_values(pairs[0]["label"]), predictor.config.data.label_names or ()))
    result = evaluate_folders(pred_dir, dataset_dir, output_dir=output_dir, label_names=names, surface=surface)
    for name, metrics in result.summary["per_label"].items():
        logger.info("label %s: mean Dice %s over %d cases", name, _fmt(metrics["dice"]["mean"]), metrics["dice"]["n"])
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------- finding and running bundles
def bundle_root_dir() -> Path:
    """``./bundles`` when it exists, else the ``bundles/`` folder beside the package source."""
    local = Path("bundles")
    return local if local.is_dir() else Path(__file__).resolve().parents[1] / "bundles"


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


def _config_files(bundle: Path, names: Sequence[str]) -> list[Path]:
    files = []
    for name in names:
        path = bundle / "configs" / (name if name.endswith((".json", ".yaml", ".yml")) else f"{name}.json")
        if not path.is_file():
            known = ", ".join(sorted(f.stem for f in (bundle / "configs").glob("*.json") if f.stem != "metadata"))
            raise FileNotFoundError(f"{path}: config not found; available: {known}")
        files.append(path)
    return files


def run_bundle(bundle: str | Path, configs: Sequence[str] = ("train",), overrides: Mapping[str, Any] | None = None) -> list:
    """``python -m monai.bundle run`` for ``configs`` (merged in order) of a bundle, with one-line errors.

    Args:
        bundle: bundle folder or name under ``bundles/``.
        configs: config names under ``configs/``, e.g. ``("train", "multi_gpu_train")``.
        overrides: config ids to values, e.g. ``{"dataset_dir": "data/x", "epochs": 2}``.

    Raises:
        BundleError: naming the config key that failed and why.
    """
    from monai.bundle import ConfigWorkflow

    bundle = resolve_bundle(bundle)
    files = _config_files(bundle, configs)
    where = "+".join(f.name for f in files)
    try:
        workflow = ConfigWorkflow(
            config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
            meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=str(bundle / "configs" / "logging.conf"),
            workflow_type=None,
            bundle_root=str(bundle),
            **dict(overrides or {}),
        )
        workflow.initialize()
        result = workflow.run()
        workflow.finalize()
        return result
    except KeyboardInterrupt:
        raise
    except Exception as err:
        raise BundleError(describe_error(err, where)) from err


def describe_error(err: BaseException, where: str) -> str:
    """One line for a failed bundle run: the config key being built (when known) and the root cause."""
    key = None
    for frame, _ in _walk_frames(err):
        if frame.f_code.co_name == "_resolve_one_item" and isinstance(frame.f_locals.get("id"), str):
            key = frame.f_locals["id"]  # innermost wins: the component that actually failed
        elif frame.f_code.co_name == "instantiate" and hasattr(frame.f_locals.get("self"), "id"):
            key = getattr(frame.f_locals["self"], "id", None) or key
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
    if key:  # MONAI separates nested ids with "::" internally; configs and overrides write "#"
        return f"{where}: key {key.replace('::', '#')!r}: {message}"
    return f"{where}: {message}"


def _walk_frames(err: BaseException) -> Iterator[tuple[Any, int]]:
    seen: set[int] = set()
    chain = []
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = err.__cause__ or err.__context__
    for item in reversed(chain):  # outermost exception first, its frames outer to inner
        yield from traceback.walk_tb(item.__traceback__)


# ---------------------------------------------------------------------- verification
def verify_bundle(bundle: str | Path) -> list[str]:
    """Problems of a bundle, one line each naming the file and key; empty when it is sound.

    Checks the shipped files, the metadata's required fields and types (MONAI bundle specification),
    that every config parses, has a ``run`` list (train/inference/evaluate), uses only importable
    ``_target_`` callables with arguments they accept, references only ids that exist, and holds no
    absolute paths.
    """
    bundle = Path(bundle)
    problems = [f"{bundle / name}: missing" for name in BUNDLE_FILES if not (bundle / name).is_file()]
    meta_path = bundle / "configs" / "metadata.json"
    metadata = _load_json(meta_path, problems)
    if metadata is not None:
        problems += _metadata_problems(metadata, str(meta_path))
    for name in ("train", "inference", "evaluate"):
        problems += _config_problems(bundle, [name], metadata)
    if (bundle / "configs" / "multi_gpu_train.json").is_file():
        problems += _config_problems(bundle, ["train", "multi_gpu_train"], metadata)
    return list(dict.fromkeys(problems))


def _load_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        problems.append(f"{path}: not valid JSON ({err})")
        return None


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "string", dict: "object", list: "array", int: "integer", bool: "boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_fields(obj: Mapping, table: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for key, kind in table.items():
        if key not in obj:
            problems.append(f"{where}: key '{key}' missing (expected {_type_name(kind)})")
        elif not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            problems.append(f"{where}: key '{key}' is {type(obj[key]).__name__}, expected {_type_name(kind)}")
    return problems


def _metadata_problems(meta: Any, where: str) -> list[str]:
    if not isinstance(meta, dict):
        return [f"{where}: expected a JSON object"]
    problems = _check_fields(meta, METADATA_REQUIRED, where)
    version = meta.get("version")
    if isinstance(version, str) and not _SEMVER.match(version):
        problems.append(f"{where}: key 'version' {version!r} is not semantic versioning (MAJOR.MINOR.PATCH)")
    if isinstance(meta.get("changelog"), dict) and isinstance(version, str) and version not in meta["changelog"]:
        problems.append(f"{where}: key 'changelog' has no entry for version {version!r}")
    fmt = meta.get("network_data_format")
    if isinstance(fmt, dict):
        for section in ("inputs", "outputs"):
            tensors = fmt.get(section)
            if not isinstance(tensors, dict) or not tensors:
                problems.append(f"{where}: key 'network_data_format#{section}' missing or empty")
                continue
            for name, spec in tensors.items():
                key = f"network_data_format#{section}#{name}"
                if not isinstance(spec, dict):
                    problems.append(f"{where}: key '{key}' expected an object")
                    continue
                problems += _check_fields(spec, TENSOR_REQUIRED, f"{where}: {key}")
        pred = (fmt.get("outputs") or {}).get("pred") if isinstance(fmt.get("outputs"), dict) else None
        if isinstance(pred, dict) and isinstance(pred.get("channel_def"), dict):
            if isinstance(pred.get("num_channels"), int) and len(pred["channel_def"]) != pred["num_channels"]:
                problems.append(f"{where}: key 'network_data_format#outputs#pred#channel_def' names {len(pred['channel_def'])} labels for {pred['num_channels']} channels")
    return problems


def _config_problems(bundle: Path, names: Sequence[str], metadata: Any) -> list[str]:
    from monai.bundle import ConfigParser

    files = [bundle / "configs" / f"{n}.json" for n in names]
    if not all(f.is_file() for f in files):
        return []
    where = "+".join(str(f) for f in files) if len(files) > 1 else str(files[0])
    problems: list[str] = []
    contents = [_load_json(f, problems) for f in files]
    if problems or any(c is None for c in contents):
        return problems
    parser = ConfigParser()
    try:
        parser.read_config([str(f) for f in files])
    except Exception as err:  # merge errors: an override key whose parent is missing
        return [f"{where}: cannot merge ({error_message(err)})"]
    parser["_meta_"] = metadata if isinstance(metadata, dict) else {}
    if names[-1] in RUNNABLE_CONFIGS and not isinstance(parser.get("run"), list):
        problems.append(f"{where}: key 'run' missing (expected a list of components to run)")
    for key, value in _walk(parser.get(), ""):
        problems += [f"{where}: key '{key}': {p}" for p in _value_problems(key, value, parser)]
    return problems


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        if prefix:
            yield prefix, node
        for key, value in node.items():
            if key != "_meta_":
                yield from _walk(value, f"{prefix}#{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{prefix}#{i}")
    else:
        yield prefix, node


def _value_problems(key: str, value: Any, parser: Any) -> list[str]:
    from monai.bundle import ConfigComponent
    from monai.bundle.reference_resolver import ReferenceResolver

    problems = []
    if isinstance(value, dict) and "_target_" in value:
        problems += _target_problems(value, ConfigComponent)
    elif isinstance(value, str):
        for ref in ReferenceResolver.match_refs_pattern(value):
            if ref not in parser:
                problems.append(f"refers to '@{ref}', which is not defined")
        if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value):
            problems.append(f"absolute path {value!r}: use @bundle_root or a command-line override")
    return problems


def _target_problems(config: dict, component_cls: Any) -> list[str]:
    target = config["_target_"]
    if not isinstance(target, str) or target.startswith(("$", "@")):
        return []
    component = component_cls(config={"_target_": target}, id="check")
    try:
        located = component.resolve_module_name()
    except Exception as err:
        return [f"_target_ {target!r} is ambiguous ({error_message(err)})"]
    from pydoc import locate

    obj = locate(str(located)) if isinstance(located, str) else located
    if obj is None:
        return [f"_target_ {target!r} cannot be imported (expected a dotted path to a class or function)"]
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return []
    given = [k for k in config if k not in _SPECIAL_KEYS]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    problems = [f"{target} takes no argument '{k}' (takes: {', '.join(accepted)})" for k in given if k not in accepted]
    mode = config.get("_mode_", "default")
    if mode == "default":
        required = [n for n in accepted if params[n].default is inspect.Parameter.empty and n not in given]
        problems += [f"{target} needs argument '{n}'" for n in required]
    return problems
