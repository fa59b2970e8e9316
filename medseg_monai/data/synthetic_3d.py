"""Synthetic 3D cases, MR or CT (:func:`synth_volume_3d`), and datasets of them (:func:`make_synthetic_3d`):
``imagesTr``/``labelsTr`` NIfTI files (the MSD layout) with an oblique, anisotropic affine."""

from __future__ import annotations

import logging
import math
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

__all__ = ["MODALITIES", "make_synthetic_3d", "save_nifti", "synth_volume_3d", "synthetic_affine"]

logger = logging.getLogger(__name__)

MODALITIES = ("mr", "ct")

_CT_AIR = -1000.0


def synth_volume_3d(
    shape: Sequence[int] = (64, 64, 48),
    rng: np.random.Generator | int | None = None,
    modality: str = "mr",
    body_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One 3D case: image and label ``uint8`` in {0, 1, 2}, both ``(X, Y, Z)``.

    ``"mr"``: ``float32`` in roughly [0, 1000] (background ~100, organ ~+350, lesion ~+350 more,
    multiplicative bias, noise sigma 50-80). ``"ct"``: ``int16`` Hounsfield-like values: air -1000
    outside an elliptic body cylinder, body 0-40, organ 60-80, lesion 110-140, noise sigma 10-15,
    additive drift up to ~8 HU. ``body_scale`` shrinks the CT body's cross-section (1.0: it spans
    82-94 % x 72-88 % of the field of view; 0.7 leaves a wide margin of air as in a clinical scan).
    """
    shape = check_shape(shape, 3)
    if not 0.1 <= body_scale <= 1.0:
        raise ConfigError(f"body_scale must be in [0.1, 1], got {body_scale!r}")
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {MODALITIES}, got {modality!r}")
    rng = as_rng(rng)
    if modality == "mr":
        label = render_label(sample_scene(shape, rng), shape)
        levels = np.cumsum([rng.uniform(80, 140), *rng.uniform(320, 380, size=2)])
        bias = bias_terms(shape, rng, amplitude=rng.uniform(0.05, 0.12))
        out = np.empty(shape, dtype=np.float32)
        image = render_image(label, levels, bias, True, rng.uniform(50, 80), rng, out, (0.0, np.inf))
        return image, label

    # CT: organ (reach <= 0.85 * extent) inside the disc inscribed in the body cross-section
    body_semi = np.array([rng.uniform(0.82, 0.94), rng.uniform(0.72, 0.88)]) * body_scale
    half = (np.asarray(shape[:2], dtype=float) - 1.0) / 2.0
    label = render_label(sample_scene(shape, rng, extent=0.95 * float(body_semi.min())), shape)
    xs = ((np.arange(shape[0]) - half[0]) / (half[0] * body_semi[0]))[:, None]
    ys = ((np.arange(shape[1]) - half[1]) / (half[1] * body_semi[1]))[None, :]
    outside = (xs**2 + ys**2 > 1.0)[:, :, None]  # (X, Y, 1) elliptic cylinder along z
    codes = np.where(outside & (label == 0), np.uint8(3), label)
    levels = [rng.uniform(0, 40), rng.uniform(60, 80), rng.uniform(110, 140), _CT_AIR]
    bias = bias_terms(shape, rng, amplitude=rng.uniform(4.0, 8.0))
    out = np.empty(shape, dtype=np.int16)
    image = render_image(codes, levels, bias, False, rng.uniform(10, 15), rng, out, (-1024.0, 3071.0))
    return image, label


def synthetic_affine(
    spacing: Sequence[float], shape: tuple[int, ...], rng: np.random.Generator, flip_x: bool
) -> np.ndarray:
    """Oblique affine: anisotropic ``spacing``, a 5-20 degree rotation about z, an optional x flip
    (LAS instead of RAS) and an origin near (but not at) the volume centre."""
    angle = math.radians(rng.uniform(5.0, 20.0)) * rng.choice([-1.0, 1.0])
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    linear = rotation @ np.diag([-1.0 if flip_x else 1.0, 1.0, 1.0]) @ np.diag(spacing)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ ((np.asarray(shape) - 1.0) / 2.0) + rng.uniform(-30.0, 30.0, size=3)
    return affine


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write ``array`` to NIfTI ``path`` atomically, ``affine`` as both qform and sform (code 1), in millimetres."""
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def make_synthetic_3d(
    out_dir: str | Path,
    n_cases: int = 24,
    shape: Sequence[int] = (64, 64, 48),
    spacing: Sequence[float] = (1.2, 1.2, 2.5),
    seed: int = 0,
    modality: str = "mr",
    body_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """Write ``out_dir/imagesTr/case_000.nii.gz`` + ``out_dir/labelsTr/case_000.nii.gz``, ... (MSD layout).

    Image and label share an oblique affine (see :func:`synthetic_affine`); every third case,
    starting with ``case_001``, is flipped in x (LAS). qform and sform are set with code 1.
    ``body_scale`` sets the CT body's size (see :func:`synth_volume_3d`). Images are ``float32`` for ``"mr"`` and
    ``int16`` for ``"ct"``; labels are ``uint8``.

    Returns:
        ``[{"image": Path, "label": Path, "name": "case_000"}, ...]``
    """
    n_cases = check_n_cases(n_cases)
    shape = check_shape(shape, 3)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 and math.isfinite(s) for s in spacing):
        raise ConfigError(f"spacing must hold 3 positive values, got {spacing!r}")
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {MODALITIES}, got {modality!r}")
    out_dir = Path(out_dir)
    items = []
    for i, rng in enumerate(case_rngs(seed, n_cases)):
        image, label = synth_volume_3d(shape, rng, modality=modality, body_scale=body_scale)
        affine = synthetic_affine(spacing, shape, rng, flip_x=i % 3 == 1)
        name = f"case_{i:03d}"
        image_path = out_dir / "imagesTr" / f"{name}.nii.gz"
        label_path = out_dir / "labelsTr" / f"{name}.nii.gz"
        save_nifti(image, affine, image_path)
        save_nifti(label, affine, label_path)
        items.append({IMAGE: image_path, LABEL: label_path, NAME: name})
    logger.info("wrote %d synthetic 3D %s cases %s to %s", n_cases, modality, shape, out_dir)
    return items
