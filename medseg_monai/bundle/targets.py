"""What the MONAI bundles under ``bundles/`` instantiate (their configs' ``_target_`` names).

A bundle config only wires these functions together (``"_target_": "medseg_monai.bundle...."``), so
``python -m monai.bundle run`` trains, predicts and evaluates with the same :class:`RunConfig`,
:func:`~medseg_monai.api.train`, :class:`~medseg_monai.inference.Predictor` and
:func:`~medseg_monai.api.predict` as the command line (through :mod:`medseg_monai.api`)::

    configs/train.json      run_config(...) -> train_bundle(...)  -> models/model.pt + models/config.json
    configs/inference.json  network_def(...) + load_predictor(...) -> predict_bundle(...) -> masks as their sources
    + configs/evaluate.json load_predictor(...) -> evaluate_bundle(...) -> metrics CSV + summary JSON

Each bundle declares its network in its configs (``model`` and the network-shaping ``data`` fields),
so :func:`network_def` builds it before any training; training writes the same values back in
``models/config.json``. ``models/model.pt`` is the best epoch's network ``state_dict`` (what
``monai.bundle ckpt_export`` loads into ``network_def``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.config import BatchOptions, DataConfig, ModelConfig, RunConfig, dataset_fields
from medseg_monai.config.fields import from_mapping
from medseg_monai.errors import ConfigError
from medseg_monai.utils import atomic_path, atomic_write_text

__all__ = [
    "BundleError",
    "evaluate_bundle",
    "load_predictor",
    "network_def",
    "predict_bundle",
    "run_config",
    "train_bundle",
]

logger = logging.getLogger(__name__)


class BundleError(ConfigError):
    """A bundle that cannot run as configured; the message names the file/key and the problem."""


def _sections(where: str, **sections: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    out = {}
    for name, section in sections.items():
        if section is not None and not isinstance(section, Mapping):
            raise BundleError(f"{where}: section {name!r} must be a mapping of fields, got {type(section).__name__}")
        out[name] = dict(section or {})
    return out


def run_config(
    dataset_dir: str | None,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    infer: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of a bundle's ``train.json`` sections, training on ``dataset_dir``.

    Args:
        dataset_dir: dataset root in any supported layout, or a datalist ``.json``.
        data, model, train, infer, runtime: the config sections as plain mappings (same fields as ``config.json``).

    Raises:
        BundleError: ``dataset_dir`` missing, or a section holds an unknown field or a bad value.
        FileNotFoundError: ``dataset_dir`` does not exist.
    """
    if not dataset_dir:
        raise BundleError("dataset_dir is required: pass --dataset_dir DIR (a dataset folder or a datalist .json)")
    path = Path(str(dataset_dir)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset_dir {path}: no such folder or file")
    raw = _sections("train.json", data=data, model=model, train=train, infer=infer, runtime=runtime)
    raw["data"].update(dataset_fields(path))
    try:
        return RunConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise BundleError(f"train.json sections data/model/train/infer/runtime: {err}") from None


def network_def(model: Mapping[str, Any], data: Mapping[str, Any]):
    """The untrained network the configs declare, in eval mode: ``(B, in_channels, *spatial) -> (B, K, *spatial)``.

    Args:
        model: the ``model`` section (``name``, ``options``, ``deep_supervision``).
        data: ``data`` fields that shape the network: ``spatial_dims``, ``in_channels`` and ``label_values``
            (one output channel per value); other fields are accepted and ignored.
    """
    from medseg_monai.api import build_network

    sections = _sections("network_def", model=model, data=data)
    try:
        config = RunConfig(
            data=from_mapping(DataConfig, sections["data"], "data"),
            model=from_mapping(ModelConfig, sections["model"], "model"),
        )
    except (TypeError, ValueError) as err:
        raise BundleError(f"network_def: {err}") from None
    return build_network(config, load_pretrained=False).eval()


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_bundle(config: RunConfig, run_dir: str | Path, model_dir: str | Path, resume: bool = False):
    """Train into ``run_dir`` and export the best weights to ``model_dir/model.pt`` (+ ``config.json``).

    Under ``torchrun`` every process trains; only rank 0 writes. Returns the
    :class:`~medseg_monai.training.TrainResult`.
    """
    import torch

    from medseg_monai.api import load_checkpoint, train

    result = train(config, run_dir, resume=resume)
    if not _is_main_process():
        return result
    payload = load_checkpoint(result.best_checkpoint)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / "model.pt") as tmp:
        torch.save(payload["network"], tmp)
    RunConfig.from_dict(payload["config"]).save(model_dir / "config.json")
    summary = {
        "best_metric": result.best_metric,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "run_dir": str(result.run_dir),
    }
    atomic_write_text(model_dir / "training_summary.json", json.dumps(summary, indent=2) + "\n")
    logger.info(
        "best validation mean Dice %.4f at epoch %d -> %s",
        result.best_metric,
        result.best_epoch,
        model_dir / "model.pt",
    )
    return result


def load_predictor(
    network,
    checkpoint: str | Path,
    config: str | Path,
    infer: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
):
    """A :class:`~medseg_monai.inference.Predictor` of the declared ``network`` with the weights of ``checkpoint``.

    Args:
        network: the configs' ``network_def``.
        checkpoint: ``models/model.pt`` (a ``state_dict``, or a run checkpoint).
        config: ``models/config.json``, the resolved configuration training wrote (preprocessing, labels).
        infer: changes to the trained inference settings, by field (``{"overlap": 0.5}``); a field left out keeps
            the trained setting, and a ``None`` value means ``None`` (e.g. ``roi_size`` back to the patch size).
        runtime: changes to the trained device, precision and layout (``{"device": "cpu"}``).

    Raises:
        FileNotFoundError: no weights or no trained configuration yet.
        BundleError: an unknown inference or runtime field, or weights that do not fit the declared network (naming what
            training used).
    """
    from medseg_monai.api import Predictor, load_checkpoint

    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no trained model config; run configs/train.json first "
            "(it writes models/model.pt and models/config.json)"
        )
    trained = RunConfig.load(path)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: model weights not found; run configs/train.json first")
    try:
        network.load_state_dict(load_checkpoint(checkpoint)["network"])
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        data = trained.data
        raise BundleError(
            f"{checkpoint}: weights do not fit the network the configs declare ({first_line}); they were trained as "
            f"{trained.model.name!r} with options {json.dumps(dict(trained.model.options))}, "
            f"spatial_dims {data.spatial_dims}, "
            f"in_channels {data.in_channels}, label_values {list(data.label_values or ())}: override --network, "
            "--network_options, --spatial_dims, --in_channels or --label_values to match"
        ) from None
    try:
        predictor = Predictor(network, trained, dict(infer or {}), runtime=dict(runtime or {}))
    except (TypeError, ValueError) as err:
        raise BundleError(f"inference or runtime settings: {err}") from None
    predictor.source = Path(checkpoint)
    return predictor


def predict_bundle(
    predictor, inputs: str | Sequence[str] | None, output_dir: str | Path, overwrite: bool = False
) -> list:
    """Write one mask per input (file, folder, glob or list) into ``output_dir``; see :func:`~medseg_monai.api.predict`.

    Raises:
        BundleError: no inputs given, or some cases failed (after the batch went on past them).
    """
    from medseg_monai.api import failures, predict

    if not inputs:
        raise BundleError(
            "dataset_dir is required: pass --dataset_dir with the images to segment (file, folder, glob or list)"
        )
    results = predict(predictor, inputs, output_dir, options=BatchOptions(overwrite=overwrite, progress=False))
    failed = failures(results)
    written = sum(r.status == "written" for r in results)
    logger.info(
        "%d written, %d skipped, %d failed -> %s",
        written,
        len(results) - written - len(failed),
        len(failed),
        output_dir,
    )
    if failed:
        raise BundleError(f"{len(failed)} of {len(results)} cases failed, first: {failed[0].error}")
    return results


def evaluate_bundle(
    predictor, dataset_dir: str | Path | None, output_dir: str | Path, surface: bool = False, overwrite: bool = True
):
    """Predict every image of a labelled dataset and score it against its masks.

    Writes ``output_dir/predictions/``, ``output_dir/metrics_per_case.csv`` and
    ``output_dir/metrics_summary.json``; returns the :class:`~medseg_monai.evaluation.EvaluationResult`.
    """
    from medseg_monai.api import discover_pairs, evaluate

    if not dataset_dir:
        raise BundleError("dataset_dir is required: pass --dataset_dir with a labelled dataset (images and masks)")
    pairs = discover_pairs(dataset_dir)
    output_dir = Path(output_dir)
    pred_dir = output_dir / "predictions"
    predict_bundle(predictor, [p["image"] for p in pairs], pred_dir, overwrite=overwrite)
    names = dict(zip(predictor.output_values(pairs[0]["label"]), predictor.config.data.label_names or ()))
    result = evaluate(pred_dir, dataset_dir, output_dir=output_dir, label_names=names, surface=surface)
    for name, metrics in result.summary["per_label"].items():
        mean = metrics["dice"]["mean"]
        logger.info(
            "label %s: mean Dice %s over %d cases", name, "n/a" if mean is None else f"{mean:.4f}", metrics["dice"]["n"]
        )
    return result
