"""A synthetic dataset of two channels per case, in the nnU-Net layout.

Each case is the scene of :mod:`medseg_monai.data.synthetic_scene` (an organ, class 1, holding one to three
lesions, class 2) seen through two contrasts that each show only part of it:

- channel 0 (``T2``): the organ is brighter than the background, its lesions look like the organ;
- channel 1 (``ADC``): the lesions are brighter than everything else, the organ looks like the background.

So the organ can be found from channel 0 only and the lesions from channel 1 only: a network needs both.
Files: ``imagesTr/case_000_0000.nii.gz``, ``imagesTr/case_000_0001.nii.gz``, ``labelsTr/case_000.nii.gz``
and a ``dataset.json`` with ``channel_names`` ``{"0": "T2", "1": "ADC"}``, ``labels`` and ``file_ending``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.data.synthetic_3d import save_nifti, synthetic_affine
from medseg_monai.data.synthetic_scene import (
    as_rng,
    bias_terms,
    case_rngs,
    check_n_cases,
    check_shape,
    render_image,
    render_label,
    sample_scene,
)
from medseg_monai.errors import ConfigError
from medseg_monai.keys import IMAGE, LABEL, NAME
from medseg_monai.utils import atomic_write_text

__all__ = ["CHANNEL_NAMES", "make_synthetic_two_channel", "synth_two_channel_3d"]

logger = logging.getLogger(__name__)

#: names of the two channels, in order
CHANNEL_NAMES = ("T2", "ADC")


def synth_two_channel_3d(
    shape: Sequence[int] = (48, 48, 32), rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One case: channel 0 and channel 1 (``float32``, roughly [0, 1000]) and the label (``uint8`` in {0, 1, 2}),
    all ``(X, Y, Z)``; see the module docstring for what each channel shows."""
    shape = check_shape(shape, 3)
    rng = as_rng(rng)
    label = render_label(sample_scene(shape, rng), shape)
    bias = bias_terms(shape, rng, amplitude=rng.uniform(0.05, 0.12))
    background, organ = rng.uniform(80, 140), rng.uniform(350, 420)
    t2 = render_image(
        label,
        np.array([background, background + organ, background + organ]),
        bias,
        True,
        rng.uniform(40, 60),
        rng,
        np.empty(shape, np.float32),
        (0.0, np.inf),
    )
    floor, lesion = rng.uniform(150, 250), rng.uniform(450, 550)
    adc = render_image(
        label,
        np.array([floor, floor, floor + lesion]),
        bias,
        True,
        rng.uniform(40, 60),
        rng,
        np.empty(shape, np.float32),
        (0.0, np.inf),
    )
    return t2, adc, label


def make_synthetic_two_channel(
    out_dir: str | Path,
    n_cases: int = 12,
    shape: Sequence[int] = (48, 48, 32),
    spacing: Sequence[float] = (1.2, 1.2, 2.5),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Write a two-channel nnU-Net dataset (``imagesTr/NAME_0000``, ``NAME_0001``, ``labelsTr/NAME``, ``dataset.json``).

    Both channels and the label of a case share one oblique affine (every third case flipped in x), as in
    :func:`~medseg_monai.data.synthetic_3d.make_synthetic_3d`. Seeded: case ``i`` depends only on ``(seed, i)``.

    Returns:
        ``[{"image": [channel 0 path, channel 1 path], "label": Path, "name": "case_000"}, ...]``
    """
    n_cases = check_n_cases(n_cases)
    shape = check_shape(shape, 3)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 and math.isfinite(s) for s in spacing):
        raise ConfigError(f"spacing must hold 3 positive values, got {spacing!r}")
    out_dir = Path(out_dir)
    items = []
    for i, rng in enumerate(case_rngs(seed, n_cases)):
        t2, adc, label = synth_two_channel_3d(shape, rng)
        affine = synthetic_affine(spacing, shape, rng, flip_x=i % 3 == 1)
        name = f"case_{i:03d}"
        channels = [out_dir / "imagesTr" / f"{name}_{k:04d}.nii.gz" for k in range(len(CHANNEL_NAMES))]
        for array, path in zip((t2, adc), channels):
            save_nifti(array, affine, path)
        label_path = out_dir / "labelsTr" / f"{name}.nii.gz"
        save_nifti(label, affine, label_path)
        items.append({IMAGE: channels, LABEL: label_path, NAME: name})
    meta = {
        "name": "synthetic two-channel",
        "channel_names": {str(k): n for k, n in enumerate(CHANNEL_NAMES)},
        "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
    }
    atomic_write_text(out_dir / "dataset.json", json.dumps(meta, indent=2) + "\n")
    logger.info("wrote %d synthetic two-channel cases %s to %s", n_cases, shape, out_dir)
    return items
