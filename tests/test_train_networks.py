"""Every network trains end to end through the trainer and predicts through the Predictor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from medseg_monai.config import ModelConfig
from medseg_monai.engines import Predictor, train
from tests.conftest import tiny_config

NETWORKS = {
    "unetpp-deep-supervision": ModelConfig(name="unetpp", options={"features": [4, 4, 8, 16, 32, 4]}, deep_supervision=True),
    "deeplabv3-mobilenet-two-stage": ModelConfig(name="deeplabv3", options={"backbone": "mobilenet_v3_large"}),
}


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_network_trains_and_predicts(key, synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=2)
    config = dataclasses.replace(config, model=NETWORKS[key])
    if key.startswith("deeplab"):
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=1))
    result = train(config, tmp_path / "run")
    assert result.epochs_run == 2 and 0.0 <= result.best_metric <= 1.0
    source = next(p for p in sorted(synth_2d.glob("*.png")) if not p.stem.endswith("_mask"))
    out = Predictor.from_run(result.run_dir, checkpoint="last").predict_file(source, tmp_path / "masks")
    assert out.status == "written", out.error
    mask = np.asarray(Image.open(out.output))
    assert mask.shape == np.asarray(Image.open(source)).shape and set(np.unique(mask)) <= {0, 1, 2}


def test_freeze_backbone_on_network_without_backbone_is_rejected(synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=1)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=1))
    with pytest.raises(ValueError, match="has no backbone"):
        train(config, tmp_path / "run")
