"""Schedules, warm-up, early stopping, gradient accumulation and clipping, TensorBoard: behaviour, not flags."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from medseg_monai.config import RunConfig, TrainConfig
from medseg_monai.errors import ConfigError
from medseg_monai.training import train
from medseg_monai.training.schedules import GradientClipper, LinearWarmup, build_scheduler, epoch_factor
from medseg_monai.training.tensorboard import TENSORBOARD_DIR
from tests.helpers import tiny_config


def _frozen_run(synth_2d, **train_fields) -> RunConfig:
    """A run whose validation Dice cannot change: the learning rate is too small to move the weights."""
    config = tiny_config(synth_2d, 2, epochs=6)
    fields = {"learning_rate": 1e-12, "iterations_per_epoch": 1, "tensorboard": False, **train_fields}
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **fields))


def test_plateau_drops_the_rate_and_early_stopping_stops(synth_2d, tmp_path):
    config = _frozen_run(synth_2d, scheduler="plateau", plateau_patience=0, lr_gamma=0.5, early_stop_patience=3)
    result = train(config, tmp_path / "run")
    rates = [row["lr"] for row in result.history]
    assert result.epochs_run == 4 and len(rates) == 4  # best at epoch 1, then 3 validations without improvement
    assert rates == pytest.approx([1e-12, 1e-12, 5e-13, 2.5e-13], rel=1e-6)  # logged at the start of each epoch
    resumed = train(
        dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=8)), tmp_path / "run", resume=True
    )
    assert resumed.epochs_run == 4  # a run that stopped early stays stopped


def test_step_schedule_and_warmup(synth_2d, tmp_path):
    config = _frozen_run(
        synth_2d,
        scheduler="step",
        step_size=2,
        lr_gamma=0.1,
        learning_rate=1e-3,
        epochs=5,
        iterations_per_epoch=2,
        warmup_epochs=1.0,
    )
    result = train(config, tmp_path / "run")
    rates = [row["lr"] for row in result.history]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    warmup = LinearWarmup(optimizer, warmup_epochs=1.0, iterations_per_epoch=4, accumulate_steps=2)  # 2 optimiser steps
    assert [warmup.factor(i) for i in range(1, 7)] == [0.5, 0.5, 1.0, 1.0, 1.0, 1.0]


def test_epoch_factors_are_the_closed_forms():
    cosine = epoch_factor(TrainConfig(epochs=10, scheduler="cosine"))
    assert cosine(0) == 1.0 and cosine(10) == pytest.approx(0.01) and cosine(5) == pytest.approx(0.01 + 0.99 * 0.5)
    poly = epoch_factor(TrainConfig(epochs=10, scheduler="poly"))
    assert poly(5) == pytest.approx(0.5**0.9) and poly(10) == 0.0
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert build_scheduler(TrainConfig(scheduler="none"), optimizer) is None
    assert isinstance(
        build_scheduler(TrainConfig(scheduler="plateau"), optimizer), torch.optim.lr_scheduler.ReduceLROnPlateau
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"accumulate_steps": 0}, "accumulate_steps must be >= 1, got 0"),
        ({"grad_clip": -1.0}, "grad_clip must be positive"),
        ({"early_stop_patience": 0}, "early_stop_patience must be >= 1"),
        ({"warmup_epochs": 50.0}, r"warmup_epochs must be in \[0, epochs=50\)"),
        ({"lr_gamma": 1.5}, r"lr_gamma must be in \(0, 1\)"),
        (
            {"scheduler": "plateau", "schedule_by_time": True, "time_budget_min": 1.0},
            "schedule_by_time follows the budget",
        ),
    ],
)
def test_impossible_training_options_are_named(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**fields)


def _trainer(
    network, batches, accumulate: int, clip: float | None = None
) -> tuple[SupervisedTrainer, GradientClipper | None]:
    optimizer = torch.optim.SGD(network.parameters(), lr=1.0)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=batches,
        network=network,
        optimizer=optimizer,
        loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        accumulation_steps=accumulate,
        decollate=False,
    )
    clipper = None
    if clip is not None:
        clipper = GradientClipper(network.parameters(), clip)
        clipper.attach(trainer)
    return trainer, clipper


def _network() -> UNet:
    torch.manual_seed(0)  # instance norm and no dropout: no statistics across the batch
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), num_res_units=0)


def test_accumulating_two_batches_of_two_equals_one_batch_of_four():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 1, 16, 16, generator=generator)
    labels = (torch.rand(4, 1, 16, 16, generator=generator) > 0.5).float()
    whole = [{"image": images, "label": labels}]
    halves = [{"image": images[:2], "label": labels[:2]}, {"image": images[2:], "label": labels[2:]}]

    one, two = _network(), _network()
    _trainer(one, whole, accumulate=1)[0].run()
    trainer, _ = _trainer(two, halves, accumulate=2)
    steps = []
    trainer.optimizer.step = (lambda step: lambda *a, **k: (steps.append(1), step(*a, **k))[1])(trainer.optimizer.step)
    trainer.run()
    assert len(steps) == 1  # one optimiser step for the two batches
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # SGD at lr 1: equal weights are equal gradients


def test_gradient_clipping_bounds_the_norm_of_each_step():
    generator = torch.Generator().manual_seed(2)
    batch = [{"image": torch.rand(2, 1, 16, 16, generator=generator) * 50, "label": torch.ones(2, 1, 16, 16)}]
    network = _network()
    trainer, clipper = _trainer(network, batch, accumulate=1, clip=1e-3)
    norms = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda _e: norms.append(
            math.sqrt(sum(float(p.grad.pow(2).sum()) for p in network.parameters() if p.grad is not None))
        ),
    )
    trainer.run()
    assert clipper.last_norm > 1e-3  # the raw gradient was larger ...
    assert norms[0] == pytest.approx(1e-3, rel=1e-3)  # ... and the step used the clipped one


def test_run_folder_has_tensorboard_scalars_and_pictures(synth_2d, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(synth_2d, 2, epochs=2)
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, iterations_per_epoch=2, tensorboard_images_every=1, warmup_epochs=1.0),
    )
    train(config, tmp_path / "run")
    events = list((tmp_path / "run" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(events[0]), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {
        "train/loss",
        "train/learning_rate",
        "val_mean_dice",
        "val_mean_iou",
        "val_dice/class_1",
        "val_dice/class_2",
    } <= set(tags["scalars"])
    assert [event.step for event in accumulator.Scalars("train/loss")] == [1, 2, 3, 4]
    rates = [event.value for event in accumulator.Scalars("train/learning_rate")]
    assert rates[0] == pytest.approx(0.5e-2) and rates[1] == pytest.approx(1e-2)  # one epoch of warm-up: 2 steps
    pictures = accumulator.Images("val/image_truth_prediction")
    assert [p.step for p in pictures] == [1, 2] and pictures[0].width == 3 * pictures[
        0
    ].height  # image | truth | prediction

    off = dataclasses.replace(
        config, train=dataclasses.replace(config.train, tensorboard=False, epochs=1, warmup_epochs=0.0)
    )
    train(off, tmp_path / "off")
    assert not (tmp_path / "off" / TENSORBOARD_DIR).exists()


def test_schedules_and_early_stopping_from_a_bundle_override(synth_2d, tmp_path):
    from medseg_monai import bundle as mb
    from tests.test_bundles import copy_bundle, smoke_overrides

    root = copy_bundle("unet2d_png", tmp_path)
    overrides = {
        **smoke_overrides("unet2d_png", synth_2d),
        "epochs": 5,
        "learning_rate": 1e-12,
        "train#scheduler": "plateau",
        "train#early_stop_patience": 1,
        "train#tensorboard": False,
    }
    result = mb.run_bundle(root, ["train"], overrides)[0]
    assert (
        result.epochs_run == 2 and result.config.train.scheduler == "plateau"
    )  # no improvement after epoch 1: stopped
    step = mb.run_bundle(
        root,
        ["train"],
        {**overrides, "epochs": 2, "train#scheduler": "step", "train#early_stop_patience": None, "train#step_size": 1},
    )[0]
    assert [row["lr"] for row in step.history] == pytest.approx([1e-12, 1e-13])
