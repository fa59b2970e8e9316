"""Synthetic 2D cases (:func:`synth_image_2d`) and datasets of them (:func:`make_synthetic_2d`): a flat folder of
8-bit PNG images and ``_mask`` PNGs, the layout :func:`~medseg_monai.data.datalist.discover_pairs` reads last."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from medseg_monai.utils import atomic_path

__all__ = ["make_synthetic_2d", "synth_image_2d"]

logger = logging.getLogger(__name__)


def synth_image_2d(
    shape: Sequence[int] = (128, 128),
    rng: np.random.Generator | int | None = None,
    *,
    channels: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """One 2D case: image ``float32`` in [0, 1] and label ``uint8`` in {0, 1, 2}.

    Background ~0.08-0.14, organ ~0.35 brighter, lesion ~0.35 brighter again, a multiplicative
    bias of about +-10% and Gaussian noise with sigma 0.05-0.08.

    Args:
        shape: ``(H, W)``, each at least 16.
        rng: generator (or seed) that draws the case.
        channels: 1 gives an ``(H, W)`` image; more gives ``(H, W, channels)`` with a slightly
            different contrast per channel (shared anatomy and bias, independent noise).
    """
    shape = check_shape(shape, 2)
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels}")
    rng = as_rng(rng)
    label = render_label(sample_scene(shape, rng), shape)
    background = rng.uniform(0.08, 0.14)
    organ_step, lesion_step = rng.uniform(0.32, 0.38, size=2)
    bias = bias_terms(shape, rng, amplitude=rng.uniform(0.05, 0.12))
    sigma = rng.uniform(0.05, 0.08)
    images = []
    for c in range(channels):
        gain = rng.uniform(0.85, 1.1, size=2) if c else np.ones(2)
        levels = np.cumsum([background, organ_step * gain[0], lesion_step * gain[1]])
        out = np.empty(shape, dtype=np.float32)
        images.append(render_image(label, levels, bias, True, sigma, rng, out, (0.0, 1.0)))
    image = images[0] if channels == 1 else np.stack(images, axis=-1)
    return image, label


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def make_synthetic_2d(
    out_dir: str | Path,
    n_cases: int = 40,
    shape: Sequence[int] = (128, 128),
    seed: int = 0,
    rgb: bool = False,
) -> list[dict[str, Any]]:
    """Write ``out_dir/case_000.png`` + ``out_dir/case_000_mask.png``, ... (flat layout).

    Images are 8-bit gray PNGs (RGB when ``rgb``); masks are 8-bit PNGs holding the class index
    (0 background, 1 organ, 2 lesion).

    Returns:
        ``[{"image": Path, "label": Path, "name": "case_000"}, ...]``
    """
    n_cases = check_n_cases(n_cases)
    shape = check_shape(shape, 2)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for i, rng in enumerate(case_rngs(seed, n_cases)):
        image, label = synth_image_2d(shape, rng, channels=3 if rgb else 1)
        name = f"case_{i:03d}"
        image_path, label_path = out_dir / f"{name}.png", out_dir / f"{name}_mask.png"
        _save_png(np.rint(image * 255.0).astype(np.uint8), image_path)
        _save_png(label, label_path)
        items.append({IMAGE: image_path, LABEL: label_path, NAME: name})
    logger.info("wrote %d synthetic 2D cases %s to %s", n_cases, shape, out_dir)
    return items
