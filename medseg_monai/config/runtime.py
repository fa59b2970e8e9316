"""The ``runtime`` section of a run: where and in which arithmetic the network runs, in training and inference."""

from __future__ import annotations

import dataclasses

from medseg_monai.config.fields import check_choices, documented, setting
from medseg_monai.config.types import MemoryFormat, Precision

__all__ = ["RUNTIME_FIELDS", "RuntimeConfig"]


@documented
@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Device, arithmetic and tensor layout of the network: training uses them, and a model loaded for
    prediction starts from its run's (``medseg predict --device/--precision/--memory-format`` change them)."""

    device: str = setting(
        "auto",
        help="Where the network runs: `auto` (CUDA when available, one GPU per torchrun process), `cpu` or `cuda[:N]`.",
    )
    precision: Precision = setting(
        "auto",
        help="Network arithmetic: `auto` is float16 mixed precision on CUDA and bfloat16 autocast on CPUs with "
        "native bfloat16 (AVX512-BF16/AMX), else float32; `fp32`, `bf16`, `fp16` (CUDA) force one.",
    )
    memory_format: MemoryFormat = setting(
        "auto",
        help="Tensor layout of the network: `channels_last` (`channels_last_3d` for volumes; faster convolutions on "
        "CPUs, measured in docs/performance.md), `contiguous`, or `auto`: channels-last except for `unetpp`, which "
        "it slows down.",
    )

    def __post_init__(self) -> None:
        check_choices(self)


#: the fields of the runtime section (they were ``train.*`` and ``infer.*`` fields in configs of version 1)
RUNTIME_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RuntimeConfig))
