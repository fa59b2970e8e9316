"""``train.compile``: which runs ``auto`` compiles, what ``on`` refuses, and a compiled run's checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from medseg_monai.config import TrainConfig
from medseg_monai.errors import ConfigError
from medseg_monai.training import compilation
from medseg_monai.training.compilation import MIN_BUDGET_MIN, MIN_STEPS, resolve_compile
from medseg_monai.training.trainer import train
from tests.helpers import tiny_config

CPU = torch.device("cpu")


@pytest.fixture
def compiler(monkeypatch):
    monkeypatch.setattr(compilation, "_has_compiler", lambda: True)


@pytest.mark.parametrize(
    "steps, budget, expected",
    [
        (MIN_STEPS - 1, None, False),
        (MIN_STEPS, None, True),
        (10, MIN_BUDGET_MIN, True),
        (10, MIN_BUDGET_MIN - 1, False),
    ],
)
def test_auto_compiles_runs_long_enough_to_repay_it(compiler, steps, budget, expected):
    assert resolve_compile("auto", CPU, steps, budget, distributed=False) is expected


def test_auto_does_not_compile_distributed_or_recompiling_runs(compiler):
    assert not resolve_compile("auto", CPU, 10 * MIN_STEPS, None, distributed=True)
    assert not resolve_compile("auto", CPU, 10 * MIN_STEPS, None, distributed=False, recompiles=True)


def test_off_never_compiles(compiler):
    assert not resolve_compile("off", CPU, 10 * MIN_STEPS, 60.0, distributed=False)


def test_on_without_a_compiler_is_a_config_error(monkeypatch):
    monkeypatch.setattr(compilation, "_has_compiler", lambda: False)
    assert not resolve_compile("auto", CPU, 10 * MIN_STEPS, None, distributed=False)
    with pytest.raises(ConfigError, match="no C\\+\\+ compiler"):
        resolve_compile("on", CPU, 10, None, distributed=False)


def test_on_under_ddp_is_a_config_error(compiler):
    with pytest.raises(ConfigError, match="not supported with distributed training"):
        resolve_compile("on", CPU, 10, None, distributed=True)


def test_an_unknown_setting_is_refused_when_the_config_is_made():
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(compile="yes")


@pytest.mark.slow
def test_a_compiled_run_saves_the_plain_network_and_matches_eager_training(synth_2d, tmp_path):
    """Compiled and eager training of the same seed give close losses; the checkpoint has no compile prefixes."""
    base = tiny_config(synth_2d, 2, epochs=2)
    losses = {}
    for mode in ("off", "on"):
        config = dataclasses.replace(
            base,
            train=dataclasses.replace(base.train, compile=mode),
            runtime=dataclasses.replace(base.runtime, precision="fp32"),
        )
        result = train(config, tmp_path / mode)
        losses[mode] = [row["train_loss"] for row in result.history]
        state = torch.load(tmp_path / mode / "checkpoints" / "last.pt", weights_only=True)["network"]
        assert not any(key.startswith("_orig_mod") for key in state)
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-3)
