"""``medseg bundle verify``: a bundle checked against the MONAI bundle specification and against itself.

The specification's required metadata keys and tensor fields are the tables below (meta_schema
0.8.x); ``tests/test_bundles.py`` checks the shipped bundles with these same functions.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.errors import error_message

__all__ = ["BUNDLE_FILES", "METADATA_REQUIRED", "NETWORK_FIELDS", "TENSOR_REQUIRED", "verify_bundle"]

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
#: MONAI bundle specification (meta_schema 0.8.x): required metadata keys and their JSON types
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


def verify_bundle(bundle: str | Path) -> list[str]:
    """Problems of a bundle, one line each naming the file and key; empty when it is sound.

    Checks the shipped files, the metadata's required fields and types (MONAI bundle specification),
    that every config parses (``evaluate.json`` over ``inference.json``, ``multi_gpu_train.json`` over
    ``train.json``), has a ``run`` list, uses only importable ``_target_`` callables with arguments they
    accept, references only ids that exist, and holds no absolute paths; and that ``train.json`` and
    ``inference.json`` declare the same network, which fits the metadata's channels and labels.
    """
    bundle = Path(bundle)
    problems = [f"{bundle / name}: missing" for name in BUNDLE_FILES if not (bundle / name).is_file()]
    meta_path = bundle / "configs" / "metadata.json"
    metadata = _load_json(meta_path, problems)
    if metadata is not None:
        problems += _metadata_problems(metadata, str(meta_path))
    from medseg_monai.bundle.tooling import BASE_CONFIGS

    merged = [[base, delta] for delta, base in BASE_CONFIGS.items()]
    for names in [["train"], ["inference"], *merged]:
        problems += _config_problems(bundle, names, metadata)
    if not problems:
        problems += _network_problems(bundle, metadata)
    return list(dict.fromkeys(problems))


def _load_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
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
                problems.append(
                    f"{where}: key 'network_data_format#outputs#pred#channel_def' names {len(pred['channel_def'])} "
                    f"labels for {pred['num_channels']} channels"
                )
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
    from monai.bundle import ConfigComponent, ReferenceResolver

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


#: the ``data`` fields that shape the network (with the ``model`` section): declared alike in train and inference
NETWORK_FIELDS = ("spatial_dims", "in_channels", "label_values", "label_names")


def _declared_network(bundle: Path, name: str, metadata: Any) -> tuple[dict, dict]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / f"{name}.json"))
    parser["_meta_"] = metadata if isinstance(metadata, dict) else {}
    model = dict(parser.get_parsed_content("model"))
    data = dict(parser.get_parsed_content("data"))
    return model, {key: data.get(key) for key in NETWORK_FIELDS}


def _network_problems(bundle: Path, metadata: Any) -> list[str]:
    """``train.json`` and ``inference.json`` declare one network, and it matches the metadata's tensors."""
    declared = {}
    for name in ("train", "inference"):
        try:
            declared[name] = _declared_network(bundle, name, metadata)
        except Exception as err:  # any failure to resolve the sections is the problem reported
            return [f"{bundle / 'configs' / f'{name}.json'}: keys 'model'/'data' do not resolve ({error_message(err)})"]
    problems = []
    (train_model, train_data), (infer_model, infer_data) = declared["train"], declared["inference"]
    if train_model != infer_model:
        problems.append(
            f"{bundle / 'configs'}: train.json key 'model' {train_model} differs from inference.json's {infer_model}"
        )
    for key in NETWORK_FIELDS:
        if train_data[key] != infer_data[key]:
            problems.append(
                f"{bundle / 'configs'}: key 'data#{key}' is {train_data[key]} "
                f"in train.json but {infer_data[key]} in inference.json"
            )
    fmt = metadata.get("network_data_format", {}) if isinstance(metadata, dict) else {}
    image = fmt.get("inputs", {}).get("image", {})
    pred = fmt.get("outputs", {}).get("pred", {})
    where = bundle / "configs" / "metadata.json"
    if image.get("num_channels") != infer_data["in_channels"]:
        problems.append(
            f"{where}: key 'network_data_format#inputs#image#num_channels' is {image.get('num_channels')}, "
            f"the configs declare in_channels {infer_data['in_channels']}"
        )
    labels = infer_data["label_values"] or []
    if pred.get("num_channels") != len(labels):
        problems.append(
            f"{where}: key 'network_data_format#outputs#pred#num_channels' is {pred.get('num_channels')}, "
            f"the configs declare {len(labels)} label values"
        )
    names = list((pred.get("channel_def") or {}).values())
    if infer_data["label_names"] is not None and names != list(infer_data["label_names"]):
        problems.append(
            f"{where}: key 'network_data_format#outputs#pred#channel_def' "
            f"names {names}, the configs {list(infer_data['label_names'])}"
        )
    return problems
