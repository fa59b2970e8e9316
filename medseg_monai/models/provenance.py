"""Facts about a loaded model for the run manifest: weights and config checksums, settings, devices."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from medseg_monai.config import RunConfig

__all__ = ["model_facts", "weights_sha256"]


def weights_sha256(network: torch.nn.Module) -> str:
    """SHA-256 over the network's state dict (names and raw bytes, in name order)."""
    weights = hashlib.sha256()
    for key, tensor in sorted(network.state_dict().items()):
        weights.update(key.encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return weights.hexdigest()


def model_facts(
    network: torch.nn.Module, config: RunConfig, source: Path | None, device: torch.device, stitch_device: torch.device
) -> dict[str, Any]:
    """Model, configuration and device facts of a predictor (``model``, ``infer``, ``runtime`` and ``device``
    sections)."""
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    data = config.data
    return {
        "model": {
            "checkpoint": str(source.resolve()) if source else None,
            "network": config.model.name,
            "weights_sha256": weights_sha256(network),
            "config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
            "spatial_dims": data.spatial_dims,
            "image_dims": data.image_dims,
            "slice_axis": data.slice_axis,
            "context_slices": data.context_slices,
            "label_values": list(data.label_values or ()),
            "label_names": list(data.label_names or ()),
            "roi_size": list(config.roi_size),
            "target_spacing": list(data.target_spacing) if data.target_spacing else None,
        },
        "infer": config.to_dict()["infer"],
        "runtime": config.to_dict()["runtime"],
        "device": {
            "network": str(device),
            "stitch": str(stitch_device),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
