"""Which floating-point precision the network runs in: ``fp32``, ``bf16``, ``fp16`` or ``auto``.

``auto`` is float16 autocast on CUDA and bfloat16 autocast on CPUs that compute bfloat16 natively
(AVX512-BF16 or AMX; about twice as fast as float32 for 3D convolutions), else float32. Autocast
keeps the weights, the blending of windows and everything after the network in float32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


import torch

from medseg_monai.compat import cpu_supports_bf16

__all__ = ["AutocastNetwork", "autocast", "cpu_supports_bf16", "resolve_precision"]

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
        raise ValueError(f"precision must be one of auto, fp32, bf16, fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' is for CUDA; on the CPU use 'bf16' or 'fp32'")
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        logger.warning("this CPU has no native bfloat16 (AVX512-BF16/AMX): precision 'bf16' runs emulated and slower than fp32")
    return _DTYPES[precision]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` on ``device`` in ``dtype``; a no-op for ``None`` (float32)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


class AutocastNetwork(torch.nn.Module):
    """``network`` run under autocast in ``dtype``; outputs come back as float32 (a tensor or a list of them).

    For bfloat16 training on the CPU, where MONAI's engines only autocast on CUDA. The weights stay
    float32 and belong to ``network`` (checkpoints save ``network`` itself).
    """

    def __init__(self, network: torch.nn.Module, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.network = network
        self.device_type = device.type
        self.dtype = dtype

    def forward(self, *args, **kwargs):
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.network(*args, **kwargs)
        if isinstance(out, (list, tuple)):
            return type(out)(o.float() for o in out)
        return out.float()
