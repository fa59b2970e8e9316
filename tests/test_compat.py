"""The private MONAI names of medseg_monai/compat.py still exist and behave as our readers rely on.

A failure here means MONAI changed them: update compat.py (and the readers) before anything else.
"""

from __future__ import annotations

import numpy as np
import pytest
from monai.utils import MetaKeys

from medseg_monai.compat import copy_compatible_dict, stack_images


def test_copy_compatible_dict_copies_the_first_file_and_checks_the_next():
    first = {MetaKeys.AFFINE: np.eye(4), MetaKeys.SPATIAL_SHAPE: np.asarray((4, 5)), "format": "PNG", "none": None}
    meta: dict = {}
    copy_compatible_dict(first, meta)
    assert meta["format"] == "PNG" and np.array_equal(meta[MetaKeys.AFFINE], np.eye(4)) and meta["none"] == "none"
    copy_compatible_dict(dict(first), meta)  # a second channel on the same grid
    shifted = dict(first, **{MetaKeys.AFFINE: np.diag([2.0, 1, 1, 1])})
    with pytest.raises(RuntimeError, match="affine matrix of all images should be the same"):
        copy_compatible_dict(shifted, meta)
    with pytest.raises(RuntimeError, match="spatial_shape of all images should be the same"):
        copy_compatible_dict(dict(first, **{MetaKeys.SPATIAL_SHAPE: np.asarray((4, 6))}), meta)


def test_stack_images_adds_a_channel_axis_or_concatenates_along_the_recorded_one():
    a, b = np.zeros((4, 5)), np.ones((4, 5))
    assert stack_images([a], {}) is a
    meta = {MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan")}
    stacked = stack_images([a, b], meta)
    assert stacked.shape == (2, 4, 5) and meta[MetaKeys.ORIGINAL_CHANNEL_DIM] == 0 and stacked[1].all()
    rgb = np.zeros((4, 5, 3))
    assert stack_images([rgb, rgb], {MetaKeys.ORIGINAL_CHANNEL_DIM: -1}).shape == (4, 5, 6)
