"""Shared fixtures: small seeded synthetic datasets, tiny trained runs, the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_UNET = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Real datasets (``$MEDSEG_DATA_DIR``, default ``../shared/data``); skips when absent."""
    root = Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} not present")
    return root


@pytest.fixture(scope="session")
def synth_2d(tmp_path_factory) -> Path:
    from medseg_monai.data.synthetic import make_synthetic_2d

    out = tmp_path_factory.mktemp("synth2d")
    make_synthetic_2d(out, n_cases=8, shape=(64, 64), seed=3)
    return out


@pytest.fixture(scope="session")
def synth_3d(tmp_path_factory) -> Path:
    from medseg_monai.data.synthetic import make_synthetic_3d

    out = tmp_path_factory.mktemp("synth3d")
    make_synthetic_3d(out, n_cases=5, shape=(32, 32, 16), spacing=(1.2, 1.2, 2.5), seed=4)
    return out


def tiny_config(data_dir: Path, dims: int, epochs: int = 2, **data_kw):
    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig

    patch = (32, 32) if dims == 2 else (16, 16, 16)
    return RunConfig(
        data=DataConfig(data_dir=str(data_dir), spatial_dims=dims, patch_size=patch, samples_per_image=1, val_fraction=0.25, **data_kw),
        model=ModelConfig(name="unet", options=TINY_UNET),
        train=TrainConfig(epochs=epochs, batch_size=2, learning_rate=1e-2),
        infer=InferConfig(overlap=0.25, sw_batch_size=2),
    )


@pytest.fixture(scope="session")
def run_2d(synth_2d, tmp_path_factory):
    from medseg_monai.engines.train import train

    return train(tiny_config(synth_2d, 2), tmp_path_factory.mktemp("run2d"))


@pytest.fixture(scope="session")
def run_3d(synth_3d, tmp_path_factory):
    from medseg_monai.engines.train import train

    return train(tiny_config(synth_3d, 3), tmp_path_factory.mktemp("run3d"))
