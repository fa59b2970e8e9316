"""How the network's arithmetic runs: precision (``fp32``, ``bf16``, ``fp16``, ``auto``) and memory layout.

``auto`` precision is float16 autocast on CUDA and bfloat16 autocast on CPUs that compute bfloat16
natively (AVX512-BF16 or AMX; about twice as fast as float32 for 3D convolutions), else float32.
Autocast keeps the weights, the blending of windows and everything after the network in float32.
``auto`` layout is channels-last (oneDNN's preferred layout) except for networks it slows down.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from medseg_monai.compat import cpu_supports_bf16
from medseg_monai.errors import ConfigError

__all__ = ["FastForward", "autocast", "cpu_supports_bf16", "resolve_memory_format", "resolve_precision"]

#: networks measured slower in channels-last on the CPU
#: (UNet++ 2D, 4 x 256^2: bf16 0.47 s contiguous, 0.64 s channels-last)
CONTIGUOUS_NETWORKS = frozenset({"unetpp"})

logger = logging.getLogger(__name__)


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` runs in float32.

    Raises:
        ValueError: an unknown precision, or ``fp16`` on the CPU (too slow there to be useful).
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None
    if precision == "fp32":
        return None
    if precision not in _DTYPES:
        raise ConfigError(f"precision must be one of auto, fp32, bf16, fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision 'fp16' is for CUDA; on the CPU use 'bf16' or 'fp32'")
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        logger.warning(
            "this CPU has no native bfloat16 (AVX512-BF16/AMX): precision 'bf16' runs emulated and slower than fp32"
        )
    return _DTYPES[precision]


def resolve_memory_format(setting: str, spatial_dims: int | None, network: str) -> torch.memory_format:
    """The layout for ``setting`` (``auto``, ``channels_last``, ``contiguous``) of a ``spatial_dims`` network."""
    if setting not in ("auto", "channels_last", "contiguous"):
        raise ConfigError(f"memory_format must be one of auto, channels_last, contiguous, got {setting!r}")
    if setting == "contiguous" or (setting == "auto" and network in CONTIGUOUS_NETWORKS):
        return torch.contiguous_format
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` on ``device`` in ``dtype``; a no-op for ``None`` (float32)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


class FastForward(torch.nn.Module):
    """``network`` fed inputs in ``memory_format`` and run under autocast in ``dtype`` (``None``: float32);
    outputs come back as float32 (a tensor or a list of them).

    For training on the CPU, where MONAI's engines only autocast on CUDA. The weights stay float32 and
    belong to ``network`` (checkpoints save ``network`` itself).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        device: torch.device,
        dtype: torch.dtype | None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        super().__init__()
        self.network = network
        self.device = device
        self.dtype = dtype
        self.memory_format = memory_format

    def forward(self, x: torch.Tensor, *args, **kwargs):
        x = x.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.dtype):
            out = self.network(x, *args, **kwargs)
        if isinstance(out, (list, tuple)):
            return type(out)(o.float() for o in out)
        return out.float()
