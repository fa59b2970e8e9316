"""Shared fixtures: small seeded synthetic datasets, tiny trained runs, the real-data folder."""

from __future__ import annotations

import locale
import os
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY_NETWORKS, tiny_config


@pytest.fixture(autouse=True)
def _process_locale():
    """Tests that write DICOM with SimpleITK switch the process locale to C (GDCM); the next test gets it back."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Real datasets (``$MEDSEG_DATA_DIR``, default ``../shared/data``); skips when absent."""
    root = Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} not present")
    return root


@pytest.fixture(scope="session")
def tiny_networks() -> dict[str, dict]:
    """Options of the tiny version of every network (:data:`tests.helpers.TINY_NETWORKS`)."""
    return TINY_NETWORKS


@pytest.fixture(scope="session")
def synth_2d(tmp_path_factory) -> Path:
    from medseg_monai.data.synthetic_2d import make_synthetic_2d

    out = tmp_path_factory.mktemp("synth2d")
    make_synthetic_2d(out, n_cases=8, shape=(64, 64), seed=3)
    return out


@pytest.fixture(scope="session")
def synth_3d(tmp_path_factory) -> Path:
    from medseg_monai.data.synthetic_3d import make_synthetic_3d

    out = tmp_path_factory.mktemp("synth3d")
    make_synthetic_3d(out, n_cases=5, shape=(32, 32, 16), spacing=(1.2, 1.2, 2.5), seed=4)
    return out


@pytest.fixture(scope="session")
def run_2d(synth_2d, tmp_path_factory):
    from medseg_monai.training.trainer import train

    return train(tiny_config(synth_2d, 2), tmp_path_factory.mktemp("run2d"))


@pytest.fixture(scope="session")
def run_3d(synth_3d, tmp_path_factory):
    from medseg_monai.training.trainer import train

    return train(tiny_config(synth_3d, 3), tmp_path_factory.mktemp("run3d"))
