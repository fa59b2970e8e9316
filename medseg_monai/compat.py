"""The one place that uses private MONAI (and torch) names; ``tests/test_compat.py`` fails loudly when they change.

Our readers (:mod:`medseg_monai.io.readers`) implement MONAI's ``ImageReader`` interface and must merge
the metadata and stack the arrays of several files read as channels exactly as MONAI's own readers do;
MONAI keeps those two steps private in ``monai.data.image_reader``. Whether the CPU computes bfloat16
natively (AVX512-BF16 or AMX) is only exposed privately by ``torch.cpu``.
"""

from __future__ import annotations

from monai.data.image_reader import _copy_compatible_dict, _stack_images

__all__ = ["copy_compatible_dict", "cpu_supports_bf16", "stack_images"]

#: ``copy_compatible_dict(from_dict, to_dict)``: copy one file's metadata into ``to_dict`` (first file), or check
#: that its affine and spatial shape match what is already there (later files; ``RuntimeError`` otherwise)
copy_compatible_dict = _copy_compatible_dict

#: ``stack_images(arrays, meta)``: the single array, or the arrays stacked along ``meta["original_channel_dim"]``
#: (a new first axis when the files have no channel axis, which ``meta`` then records)
stack_images = _stack_images


def cpu_supports_bf16() -> bool:
    """True when this CPU has bfloat16 instructions (AVX512-BF16 or AMX tiles), so bf16 convolutions are fast."""
    import torch

    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(bool(check()) for check in checks if check is not None)
