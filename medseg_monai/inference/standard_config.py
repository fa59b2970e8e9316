"""The standard MONAI bundle inference config of a trained run, generated from its inference plan.

Tools that read bundles by their standard keys (MONAI Label's bundle task, the model zoo's checks) find a
``network_def``, a ``preprocessing`` ``Compose``, an ``inferer``, a ``postprocessing`` ``Compose`` and an
``evaluator`` that ``run`` drives. :func:`standard_inference_config` writes them from the same
:class:`~medseg_monai.config.RunConfig` and :func:`~medseg_monai.inference.plan.resolve_plan` the
:class:`~medseg_monai.inference.Predictor` reads, with MONAI components only, so that the config runs where
only MONAI is installed. The preprocessing steps are the chain's own (:func:`intensity_steps`,
:func:`spatial_steps`); what the medseg path adds on top (test-time flips, the foreground crop, windows only over
the body, bf16) stays with the :class:`~medseg_monai.inference.Predictor`.

At float32 with every window and linear inversion, the two paths write the same masks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.config import RunConfig, to_jsonable
from medseg_monai.errors import ConfigError
from medseg_monai.inference.plan import InferencePlan, resolve_plan
from medseg_monai.io import mask_dtype
from medseg_monai.keys import IMAGE, PRED
from medseg_monai.networks.unet import UNET_DEFAULTS
from medseg_monai.transforms.chains import intensity_steps, spatial_steps
from medseg_monai.utils import atomic_write_text

__all__ = ["STANDARD_IDS", "standard_inference_config", "write_standard_config"]

#: the config ids a tool reading the bundle standard looks for
STANDARD_IDS = ("network_def", "preprocessing", "inferer", "postprocessing", "evaluator", "run")
#: PNG files read by MONAI's PILReader come as (W, H): transposed back to the (H, W) the network was trained on
_TRANSPOSE_2D = [0, 2, 1]


def _component(name: str, keys: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"_target_": name, "keys": keys, **to_jsonable(kwargs or {})}


def network_component(config: RunConfig) -> dict[str, Any]:
    """The trained network as a MONAI component: ``(B, in_channels, *spatial) -> (B, K, *spatial)`` logits.

    Raises:
        ConfigError: a network MONAI has no class for as it is trained here (only ``unet`` maps one to one).
    """
    model, data = config.model, config.data
    if model.name != "unet":
        raise ConfigError(
            f"model.name {model.name!r}: no MONAI class builds this network as trained here; "
            "it predicts through medseg (medseg predict, or a bundle's medseg inference config)"
        )
    options = {**UNET_DEFAULTS, **dict(model.options)}
    return {
        "_target_": "monai.networks.nets.UNet",
        "spatial_dims": data.spatial_dims,
        "in_channels": data.in_channels,
        "out_channels": len(data.label_values or ()),
        **to_jsonable(options),
    }


def preprocessing_section(config: RunConfig) -> dict[str, Any]:
    """Load, channel first, (2D) transpose to ``(H, W)``, (3D) orientation and spacing, intensity, float32."""
    data = config.data
    if data.slice_axis is not None:
        raise ConfigError("data.slice_axis: a 2D network on volumes has no standard MONAI inferer")
    volume = data.image_dims == 3
    steps = [
        _component("LoadImaged", IMAGE, {"reader": "NibabelReader" if volume else "PILReader", "image_only": True}),
        _component("EnsureChannelFirstd", IMAGE),
    ]
    if not volume:
        steps.append(_component("Transposed", IMAGE, {"indices": _TRANSPOSE_2D}))
    steps += [_component(name, IMAGE, kwargs) for name, kwargs in spatial_steps(data) + intensity_steps(data)]
    steps.append(_component("EnsureTyped", IMAGE, {"dtype": "$torch.float32", "track_meta": True}))
    return {"_target_": "Compose", "transforms": steps}


def inferer_section(plan: InferencePlan) -> dict[str, Any]:
    """MONAI's ``SlidingWindowInferer`` with the plan's window, overlap, blend and window batch."""
    return {
        "_target_": "SlidingWindowInferer",
        "roi_size": list(plan.window_size()),
        "sw_batch_size": plan.sw_batch_size,
        "overlap": to_jsonable(plan.overlap),
        "mode": plan.blend_mode,
    }


def _component_steps(plan: InferencePlan, num_classes: int, spatial_dims: int) -> list[dict[str, Any]]:
    """The plan's label-map post-processing: small components (one foreground class only), largest, holes."""
    foreground = list(range(1, num_classes))
    steps = []
    if plan.min_component_size > 0:
        if num_classes > 2:  # on a label map MONAI's RemoveSmallObjects takes all voxels of one value as one object
            raise ConfigError(
                f"infer.min_component_size {plan.min_component_size} with {num_classes} classes: MONAI has no "
                "per-class component filter; set it to 0 for the standard config or predict through medseg"
            )
        # one foreground class: the (1, *spatial) map is boolean, and connectivity ndim is full connectivity.
        # MONAI hands min_size to scikit-image, which (0.26) removes objects of up to that size, inclusive
        size = plan.min_component_size - 1
        kwargs = {"min_size": size, "connectivity": spatial_dims, "independent_channels": True}
        steps.append(_component("RemoveSmallObjectsd", PRED, kwargs))
    if plan.keep_largest_component:
        steps.append(
            _component(
                "KeepLargestConnectedComponentd",
                PRED,
                {"applied_labels": foreground, "is_onehot": False, "independent": True},
            )
        )
    if plan.fill_holes:
        steps.append(_component("FillHolesd", PRED, {"applied_labels": foreground}))
    return steps


def postprocessing_section(config: RunConfig, plan: InferencePlan) -> dict[str, Any]:
    """Softmax, back to the source grid (``Invertd``, linear), argmax, the plan's component steps, the training
    masks' values, and ``SaveImaged`` as an integer label map with the source's geometry."""
    values = [int(v) for v in config.data.label_values or ()]
    dtype = mask_dtype(np.asarray(values), "data.label_values").name
    steps = [
        _component("Activationsd", PRED, {"softmax": True}),
        _component(
            "Invertd",
            PRED,
            {"transform": "@preprocessing", "orig_keys": IMAGE, "nearest_interp": False, "to_tensor": True},
        ),
        _component("AsDiscreted", PRED, {"argmax": True}),
        *_component_steps(plan, len(values), config.data.image_dims),
    ]
    if values != list(range(len(values))):
        steps.append(
            _component("MapLabelValued", PRED, {"orig_labels": list(range(len(values))), "target_labels": values})
        )
    steps.append(
        _component(
            "SaveImaged",
            PRED,
            {
                "output_dir": "@output_dir",
                "output_postfix": "",
                "output_ext": "@output_ext",
                "output_dtype": dtype,
                "resample": False,
                "separate_folder": False,
                "print_log": False,
            },
        )
    )
    return {"_target_": "Compose", "transforms": steps}


def standard_inference_config(config: RunConfig) -> dict[str, Any]:
    """The whole standard ``configs/inference.json`` of a trained ``config`` (its resolved data fields).

    ``python -m monai.bundle run --config_file configs/inference.json --bundle_root B --dataset_dir DIR
    --output_dir OUT`` segments every ``image_pattern`` file of ``DIR``; ``--inferer#overlap 0.5`` and the like
    change one setting.

    Raises:
        ConfigError: a network or layout the standard components cannot express (see :func:`network_component`).
    """
    _, plan = resolve_plan(config, runtime={"device": "cpu"})
    volume = config.data.image_dims == 3
    suffix = ".nii.gz" if volume else ".png"
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "ckpt_path": "$@bundle_root + '/models/model.pt'",
        "dataset_dir": "$@bundle_root + '/samples'",
        "image_pattern": f"*{suffix}",
        "output_dir": "$@bundle_root + '/predictions'",
        "output_ext": suffix,
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": network_component(config),
        "network": "$@network_def.to(@device)",
        "preprocessing": preprocessing_section(config),
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, @image_pattern)))]",
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": inferer_section(plan),
        "postprocessing": postprocessing_section(config, plan),
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "@ckpt_path", "load_dict": {"model": "@network"}},
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": False,
        },
        "run": ["$@evaluator.run()"],
    }


def write_standard_config(config: RunConfig, path: str | Path) -> Path:
    """Write :func:`standard_inference_config` of ``config`` to ``path`` (atomically); returns ``path``."""
    path = Path(path)
    atomic_write_text(path, json.dumps(standard_inference_config(config), indent=4) + "\n")
    return path
