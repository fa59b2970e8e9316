"""Every network trains end to end through the trainer and predicts through the Predictor; the DeepLabV3
two-stage schedule keeps the backbone frozen, then trains it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from medseg_monai.batch import predict_case
from medseg_monai.config import ModelConfig, RunConfig
from medseg_monai.inference import Predictor
from medseg_monai.models import load_checkpoint
from medseg_monai.networks import DeepLabV3Wrapper, build_network
from medseg_monai.training import train
from tests.helpers import TINY_NETWORKS, tiny_config

NETWORKS = {
    "unetpp-deep-supervision": ModelConfig(name="unetpp", options=TINY_NETWORKS["unetpp"], deep_supervision=True),
    "deeplabv3-mobilenet-two-stage": ModelConfig(name="deeplabv3", options=TINY_NETWORKS["deeplabv3"]),
}


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_network_trains_and_predicts(key, synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=2)
    config = dataclasses.replace(config, model=NETWORKS[key])
    if key.startswith("deeplab"):
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=1))
    result = train(config, tmp_path / "run")
    assert result.epochs_run == 2 and [row["epoch"] for row in result.history] == [1, 2]
    assert result.best_epoch in (1, 2) and result.best_metric == max(row["val_mean_dice"] for row in result.history)
    source = next(p for p in sorted(synth_2d.glob("*.png")) if not p.stem.endswith("_mask"))
    out = predict_case(Predictor.from_run(result.run_dir, checkpoint="last"), source, tmp_path / "masks")
    assert out.status == "written", out.error
    mask = np.asarray(Image.open(out.output))
    assert mask.shape == np.asarray(Image.open(source)).shape and set(np.unique(mask)) <= {0, 1, 2}


def _parameters(state: dict, prefix: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters (not the batch-norm statistics) of ``model`` under ``prefix`` in ``state``."""
    names = {name for name, _ in model.named_parameters()}
    return {k: v for k, v in state.items() if k.startswith(prefix) and k in names}


def test_deeplab_backbone_stays_frozen_in_the_first_stage_then_trains(synth_2d, tmp_path):
    weights = tmp_path / "backbone.pt"
    torch.save(DeepLabV3Wrapper(3, 5, backbone="mobilenet_v3_large").state_dict(), weights)
    config = tiny_config(synth_2d, 2, epochs=1, network="deeplabv3", samples_per_image=2)
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, pretrained=str(weights)),
        train=dataclasses.replace(config.train, freeze_backbone_epochs=1),
    )
    run = tmp_path / "run"
    train(config, run)
    initial = build_network(RunConfig.load(run / "config.json"))  # the local weights, first conv adapted to 1 channel
    start = _parameters(initial.state_dict(), "model.backbone.", initial)
    assert start

    frozen = load_checkpoint(run / "checkpoints" / "last.pt")
    after_frozen = _parameters(frozen["network"], "model.backbone.", initial)
    assert after_frozen.keys() == start.keys()
    for name, value in start.items():
        torch.testing.assert_close(after_frozen[name], value, rtol=0, atol=0, msg=f"{name} changed while frozen")
    n_params, n_backbone = len(list(initial.parameters())), len(start)
    assert len(frozen["optimizer"]["state"]) == n_params - n_backbone  # AdamW stepped the head only

    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    train(longer, run, resume=True)
    unfrozen = load_checkpoint(run / "checkpoints" / "last.pt")
    changed = [
        n
        for n, v in _parameters(unfrozen["network"], "model.backbone.", initial).items()
        if not torch.equal(v, start[n])
    ]
    assert len(changed) == n_backbone, (
        f"{n_backbone - len(changed)} backbone parameters did not train in the second stage"
    )
    assert len(unfrozen["optimizer"]["state"]) == n_params


def test_freeze_backbone_on_network_without_backbone_is_rejected(synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=1)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, freeze_backbone_epochs=1))
    with pytest.raises(ValueError, match="has no backbone"):
        train(config, tmp_path / "run")
