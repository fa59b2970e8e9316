"""Whether and how the training network is compiled with ``torch.compile`` (``train.compile``).

Compiling fuses the normalisation and activation layers around each convolution (TorchInductor, C++ on
the CPU), after a one-off compilation of up to a minute or two (seconds when TorchInductor's cache in the
temporary folder already holds the graph). ``auto`` therefore compiles only runs long enough to repay it:
the 30-minute hippocampus recipe, run once compiled and once not on the same machine, reached more epochs
compiled at the same validation Dice (``bench/compile_check.py``, docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil

import torch

from medseg_monai.errors import ConfigError

__all__ = ["MIN_BUDGET_MIN", "MIN_STEPS", "compile_network", "resolve_compile"]

logger = logging.getLogger(__name__)

#: ``auto`` compiles runs planned for at least this many optimiser steps ...
MIN_STEPS = 400
#: ... or given a time budget of at least this many minutes
MIN_BUDGET_MIN = 10.0


def _has_compiler() -> bool:
    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def resolve_compile(
    setting: str,
    device: torch.device,
    planned_steps: int,
    time_budget_min: float | None,
    distributed: bool,
    recompiles: bool = False,
) -> bool:
    """Whether to compile for ``setting`` (``auto``, ``on``, ``off``).

    ``auto`` compiles a single-process run of at least :data:`MIN_STEPS` steps (or a time budget of at least
    :data:`MIN_BUDGET_MIN` minutes) on a machine with a C++ compiler (CUDA: with Triton), unless the run
    ``recompiles`` (a backbone unfrozen mid-run changes the graph).

    Raises:
        ConfigError: ``on`` under DDP or without the compiler TorchInductor needs.
    """
    if setting == "off":
        return False
    missing = None
    if device.type == "cpu" and not _has_compiler():
        missing = "no C++ compiler (c++, g++ or clang++) on PATH"
    elif device.type == "cuda" and not _has_triton():
        missing = "Triton is not installed"
    if setting == "on":
        if distributed:
            raise ConfigError("train.compile 'on' is not supported with distributed training; use 'off' or 'auto'")
        if missing:
            raise ConfigError(f"train.compile 'on' needs TorchInductor's compiler: {missing}")
        return True
    if setting != "auto":
        raise ConfigError(f"compile must be one of auto, on, off, got {setting!r}")
    long_run = planned_steps >= MIN_STEPS or (time_budget_min is not None and time_budget_min >= MIN_BUDGET_MIN)
    if long_run and missing:
        logger.info("not compiling the network: %s", missing)
    return long_run and not distributed and not recompiles and missing is None


class _PlainInputs(torch.nn.Module):
    """Feeds ``compiled`` plain tensors: a tensor subclass (MONAI's ``MetaTensor``) would break its graph at every
    layer."""

    def __init__(self, compiled: torch.nn.Module):
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor, *args, **kwargs):
        return self.compiled(x.as_subclass(torch.Tensor), *args, **kwargs)


def compile_network(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` compiled for fixed input shapes; the weights stay ``network``'s own (checkpoints save it)."""
    # inductor's C++ toolchain probe warns about CUDA_HOME on machines without CUDA
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    logger.info("compiling the network (torch.compile); the first training step includes the compilation")
    return _PlainInputs(torch.compile(network, dynamic=False))
