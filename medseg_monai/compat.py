"""The one place that uses private MONAI names; ``tests/test_compat.py`` fails loudly when MONAI changes them.

Our readers (:mod:`medseg_monai.io.readers`) implement MONAI's ``ImageReader`` interface and must merge
the metadata and stack the arrays of several files read as channels exactly as MONAI's own readers do;
MONAI keeps those two steps private in ``monai.data.image_reader``.
"""

from __future__ import annotations

from monai.data.image_reader import _copy_compatible_dict, _stack_images

__all__ = ["copy_compatible_dict", "stack_images"]

#: ``copy_compatible_dict(from_dict, to_dict)``: copy one file's metadata into ``to_dict`` (first file), or check
#: that its affine and spatial shape match what is already there (later files; ``RuntimeError`` otherwise)
copy_compatible_dict = _copy_compatible_dict

#: ``stack_images(arrays, meta)``: the single array, or the arrays stacked along ``meta["original_channel_dim"]``
#: (a new first axis when the files have no channel axis, which ``meta`` then records)
stack_images = _stack_images
