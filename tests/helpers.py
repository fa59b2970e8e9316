"""What several test modules share: the tiny networks, a tiny run config, a network whose masks are known."""

from __future__ import annotations

from pathlib import Path

import torch

from medseg_monai.batch import CaseResult, run_batch
from medseg_monai.config import (
    BatchOptions,
    DataConfig,
    InferConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
)
from medseg_monai.inference import Predictor

REPO = Path(__file__).resolve().parents[1]

#: the smallest options of each network that still exercise its structure (the default suite trains them)
TINY_NETWORKS: dict[str, dict] = {
    "unet": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
    "unetpp": {"features": [4, 4, 8, 8, 16, 4]},
    "deeplabv3": {"backbone": "mobilenet_v3_large"},
}
TINY_UNET = TINY_NETWORKS["unet"]


def tiny_config(data_dir: Path, dims: int, epochs: int = 2, network: str = "unet", **data_kw) -> RunConfig:
    """A two-epoch run of a tiny network on small patches of ``data_dir``."""
    patch = (32, 32) if dims == 2 else (16, 16, 16)
    return RunConfig(
        data=DataConfig(
            **{
                "data_dir": str(data_dir),
                "spatial_dims": dims,
                "patch_size": patch,
                "samples_per_image": 1,
                "val_fraction": 0.25,
                **data_kw,
            }
        ),
        model=ModelConfig(name=network, options=TINY_NETWORKS[network]),
        train=TrainConfig(epochs=epochs, batch_size=2, learning_rate=1e-2),
        infer=InferConfig(overlap=0.25, sw_batch_size=2),
    )


class ThresholdNet(torch.nn.Module):
    """Class 1 wherever the min-max normalised first channel exceeds 0.5: the expected mask is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], dim=1) * 10


def threshold_predictor(dims: int, patch=None, label_values=(0, 1), **data_kw) -> Predictor:
    """A Predictor around :class:`ThresholdNet` (min-max intensity, overlap 0.5, CPU)."""
    patch = patch or ((32, 32) if dims == 2 else (16, 16, 8))
    config = RunConfig(
        data=DataConfig(
            spatial_dims=dims,
            patch_size=patch,
            in_channels=1,
            label_values=label_values,
            label_names=("background",) + tuple(f"class_{v}" for v in label_values[1:]),
            **{"intensity": "minmax", **data_kw},
        ),
        infer=InferConfig(overlap=0.5, sw_batch_size=2),
        runtime=RuntimeConfig(device="cpu"),
    )
    return Predictor(ThresholdNet(), config)


def predict_batch(predictor: Predictor, inputs, output_dir, **options) -> list[CaseResult]:
    """:func:`run_batch` without a progress bar."""
    return run_batch(predictor, inputs, output_dir, BatchOptions(**{"progress": False, **options}))


class SlabRecorder:
    """A merger for tests of the slab sliding window: keeps every ``(start, stop, blended)`` it is handed."""

    def __init__(self, into: torch.Tensor | None = None):
        self.slabs: list[tuple[int, int, torch.Tensor]] = []
        self.into = into  # optional (K, *spatial) tensor, slab axis first, filled as slabs arrive

    def aggregate(self, start: int, stop: int, blended: torch.Tensor) -> None:
        self.slabs.append((start, stop, blended.clone()))
        if self.into is not None:
            self.into[:, start:stop] = blended

    def finalize(self) -> list[tuple[int, int, torch.Tensor]]:
        return self.slabs
