"""Synthetic segmentation data that looks like a scan.

Each case has a noisy background, a rotated ellipse (2D) or ellipsoid (3D) "organ" (class 1), a
"lesion" (class 2) made of one to three discs or balls lying strictly inside the organ, and a smooth
intensity gradient (bias field). Geometry is drawn in voxel space, rendered slab by slab in
``float32`` so a CT-sized volume (512 x 512 x 400) takes a few seconds and little memory beyond
its output arrays.

Files are written in the layouts :func:`medseg_monai.data.datalist.discover_pairs` reads: a flat
folder of PNG images and ``_mask`` PNGs for 2D, and ``imagesTr``/``labelsTr`` NIfTI files with an
oblique, anisotropic affine for 3D.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.errors import ConfigError
from medseg_monai.keys import IMAGE, LABEL, NAME
from medseg_monai.utils import atomic_path

__all__ = [
    "MODALITIES",
    "synth_image_2d",
    "synth_volume_3d",
    "make_synthetic_2d",
    "make_synthetic_3d",
    "generate_dataset",
]

logger = logging.getLogger(__name__)

MODALITIES = ("mr", "ct")

_MIN_SIZE = 16  # smallest accepted extent of a spatial axis
_SLAB_VOXELS = 1 << 22  # voxels rendered per slab (~16 MiB per float32 temporary)
_LESION_MARGIN = 2.0  # voxels between a lesion and the organ boundary
_MIN_LESION_RADIUS = 4.0
_CT_AIR = -1000.0


@dataclass(frozen=True)
class _Scene:
    """Geometry of one case in voxel coordinates."""

    centre: np.ndarray  # (n,) organ centre
    axes: np.ndarray  # (n, n) columns are the organ's semi-axis vectors
    lesions: tuple[tuple[np.ndarray, float], ...]  # (centre, radius) of each lesion ball


def _check_shape(shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise ConfigError(f"shape must be a sequence of {ndim} sizes, got {shape!r}") from None
    if len(out) != ndim:
        raise ConfigError(f"shape must hold {ndim} sizes, got {shape!r}")
    if any(s < _MIN_SIZE for s in out):
        raise ConfigError(f"every size in shape must be >= {_MIN_SIZE}, got {shape!r}")
    return out


def _rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """Random in-plane rotation, plus a tilt of up to 20 degrees out of plane in 3D."""
    theta = rng.uniform(0.0, math.pi)
    c, s = math.cos(theta), math.sin(theta)
    if ndim == 2:
        return np.array([[c, -s], [s, c]])
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    b, g = rng.uniform(-0.35, 0.35, size=2)
    ry = np.array([[math.cos(b), 0.0, math.sin(b)], [0.0, 1.0, 0.0], [-math.sin(b), 0.0, math.cos(b)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(g), -math.sin(g)], [0.0, math.sin(g), math.cos(g)]])
    return rz @ ry @ rx


def _in_unit_ball(rng: np.random.Generator, ndim: int) -> np.ndarray:
    v = rng.standard_normal(ndim)
    return v / np.linalg.norm(v) * rng.uniform() ** (1.0 / ndim)


def _sample_scene(shape: tuple[int, ...], rng: np.random.Generator, extent: float = 1.0) -> _Scene:
    """Organ and lesions; ``extent`` shrinks the organ's region (e.g. to keep it inside a CT body).

    The organ is drawn in coordinates normalised to [-1, 1] per axis: centre within 0.2 of the
    middle, semi-axes up to 0.65, so it stays at least 7.5% of the field of view from every edge.
    A lesion ball of radius ``r`` centred inside the organ scaled by ``1 - (r + margin) / b_min``
    (``b_min``: the shortest semi-axis) lies inside the organ with ``margin`` voxels to spare.
    """
    ndim = len(shape)
    half = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    major = rng.uniform(0.5, 0.65)
    semi = np.concatenate([[major], major * rng.uniform(0.65, 0.9, size=ndim - 1)]) * extent
    axes = np.diag(half) @ _rotation(rng, ndim) @ np.diag(semi)
    centre = half + half * _in_unit_ball(rng, ndim) * 0.2 * extent
    b_min = float(np.linalg.svd(axes, compute_uv=False).min())

    lesions = []
    for _ in range(int(rng.integers(1, 4))):
        # radius 15-25% of the organ's minor axis (30-50% of its semi-axis), at least 4 voxels
        radius = b_min * rng.uniform(0.3, 0.5)
        radius = min(max(radius, _MIN_LESION_RADIUS), 0.5 * b_min)
        radius = max(min(radius, b_min - _LESION_MARGIN), 0.5)
        scale = max(1.0 - (radius + _LESION_MARGIN) / b_min, 0.0)
        lesions.append((centre + scale * axes @ _in_unit_ball(rng, ndim), radius))
    return _Scene(centre=centre, axes=axes, lesions=tuple(lesions))


def _slabs(shape: tuple[int, ...]) -> list[slice]:
    """Slices along axis 0 that hold about ``_SLAB_VOXELS`` voxels each."""
    per_row = int(np.prod(shape[1:]))
    step = max(1, _SLAB_VOXELS // per_row)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _render_label(scene: _Scene, shape: tuple[int, ...]) -> np.ndarray:
    """Label map: 1 inside the organ ellipsoid, 2 inside the lesion balls, else 0."""
    ndim = len(shape)
    label = np.zeros(shape, dtype=np.uint8)
    inv = np.linalg.inv(scene.axes).astype(np.float32)
    reach = np.linalg.norm(scene.axes, axis=1)  # half-width of the organ's bounding box per axis
    lo = np.maximum(np.floor(scene.centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(scene.centre + reach).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    coords = [
        (np.arange(lo[i], hi[i], dtype=np.float32) - np.float32(scene.centre[i])).reshape(
            [-1 if j == i else 1 for j in range(ndim)]
        )
        for i in range(ndim)
    ]
    sub = label[box]
    for rows in _slabs(sub.shape):
        local = [coords[0][rows], *coords[1:]]
        q = np.zeros((), dtype=np.float32)
        for k in range(ndim):
            u = sum(inv[k, i] * local[i] for i in range(ndim))
            q = q + u * u
        sub[rows][q <= 1.0] = 1

    for centre, radius in scene.lesions:
        lo = np.maximum(np.floor(centre - radius).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        d2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        region = label[tuple(slice(a, b) for a, b in zip(lo, hi))]
        region[d2 <= radius**2] = 2
        # a tiny lesion still marks the voxel nearest its centre
        label[tuple(np.clip(np.round(centre).astype(int), 0, np.asarray(shape) - 1))] = 2
    return label


def _bias_terms(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> list[np.ndarray]:
    """Separable smooth field: one broadcastable 1D term per axis (linear + gentle quadratic)."""
    ndim = len(shape)
    direction = rng.standard_normal(ndim)
    direction /= np.linalg.norm(direction)
    curve = rng.uniform(-1.0, 1.0, size=ndim)
    terms = []
    for i, size in enumerate(shape):
        t = np.linspace(-1.0, 1.0, size)
        term = amplitude * (direction[i] * t / math.sqrt(ndim) + 0.5 * curve[i] * t * t / ndim)
        terms.append(term.astype(np.float32).reshape([-1 if j == i else 1 for j in range(ndim)]))
    return terms


def _render_image(
    codes: np.ndarray,
    levels: np.ndarray,
    bias: list[np.ndarray],
    multiplicative: bool,
    sigma: float,
    rng: np.random.Generator,
    out: np.ndarray,
    clip: tuple[float, float],
) -> np.ndarray:
    """``out = levels[codes] * (1 + bias)`` (or ``+ bias``) plus Gaussian noise, clipped, slab by slab."""
    levels = np.asarray(levels, dtype=np.float32)
    for rows in _slabs(codes.shape):
        field = sum([bias[0][rows], *bias[1:]])
        slab = levels[codes[rows]]
        if multiplicative:
            slab *= 1.0 + field
        else:
            slab += field
        slab += np.float32(sigma) * rng.standard_normal(slab.shape, dtype=np.float32)
        np.clip(slab, clip[0], clip[1], out=slab)
        if np.issubdtype(out.dtype, np.integer):
            np.rint(slab, out=slab)
        out[rows] = slab
    return out


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


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
    shape = _check_shape(shape, 2)
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels}")
    rng = _rng(rng)
    label = _render_label(_sample_scene(shape, rng), shape)
    background = rng.uniform(0.08, 0.14)
    organ_step, lesion_step = rng.uniform(0.32, 0.38, size=2)
    bias = _bias_terms(shape, rng, amplitude=rng.uniform(0.05, 0.12))
    sigma = rng.uniform(0.05, 0.08)
    images = []
    for c in range(channels):
        gain = rng.uniform(0.85, 1.1, size=2) if c else np.ones(2)
        levels = np.cumsum([background, organ_step * gain[0], lesion_step * gain[1]])
        out = np.empty(shape, dtype=np.float32)
        images.append(_render_image(label, levels, bias, True, sigma, rng, out, (0.0, 1.0)))
    image = images[0] if channels == 1 else np.stack(images, axis=-1)
    return image, label


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
    shape = _check_shape(shape, 3)
    if not 0.1 <= body_scale <= 1.0:
        raise ConfigError(f"body_scale must be in [0.1, 1], got {body_scale!r}")
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {MODALITIES}, got {modality!r}")
    rng = _rng(rng)
    if modality == "mr":
        label = _render_label(_sample_scene(shape, rng), shape)
        levels = np.cumsum([rng.uniform(80, 140), *rng.uniform(320, 380, size=2)])
        bias = _bias_terms(shape, rng, amplitude=rng.uniform(0.05, 0.12))
        out = np.empty(shape, dtype=np.float32)
        image = _render_image(label, levels, bias, True, rng.uniform(50, 80), rng, out, (0.0, np.inf))
        return image, label

    # CT: organ (reach <= 0.85 * extent) inside the disc inscribed in the body cross-section
    body_semi = np.array([rng.uniform(0.82, 0.94), rng.uniform(0.72, 0.88)]) * body_scale
    half = (np.asarray(shape[:2], dtype=float) - 1.0) / 2.0
    label = _render_label(_sample_scene(shape, rng, extent=0.95 * float(body_semi.min())), shape)
    xs = ((np.arange(shape[0]) - half[0]) / (half[0] * body_semi[0]))[:, None]
    ys = ((np.arange(shape[1]) - half[1]) / (half[1] * body_semi[1]))[None, :]
    outside = (xs**2 + ys**2 > 1.0)[:, :, None]  # (X, Y, 1) elliptic cylinder along z
    codes = np.where(outside & (label == 0), np.uint8(3), label)
    levels = [rng.uniform(0, 40), rng.uniform(60, 80), rng.uniform(110, 140), _CT_AIR]
    bias = _bias_terms(shape, rng, amplitude=rng.uniform(4.0, 8.0))
    out = np.empty(shape, dtype=np.int16)
    image = _render_image(codes, levels, bias, False, rng.uniform(10, 15), rng, out, (-1024.0, 3071.0))
    return image, label


def _case_rngs(seed: int, n_cases: int) -> list[np.random.Generator]:
    """One generator per case; case ``i`` depends only on ``(seed, i)``, not on ``n_cases``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_cases)]


def _check_n_cases(n_cases: int) -> int:
    if int(n_cases) != n_cases or n_cases < 1:
        raise ConfigError(f"n_cases must be a positive integer, got {n_cases!r}")
    return int(n_cases)


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
    n_cases = _check_n_cases(n_cases)
    shape = _check_shape(shape, 2)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for i, rng in enumerate(_case_rngs(seed, n_cases)):
        image, label = synth_image_2d(shape, rng, channels=3 if rgb else 1)
        name = f"case_{i:03d}"
        image_path, label_path = out_dir / f"{name}.png", out_dir / f"{name}_mask.png"
        _save_png(np.rint(image * 255.0).astype(np.uint8), image_path)
        _save_png(label, label_path)
        items.append({IMAGE: image_path, LABEL: label_path, NAME: name})
    logger.info("wrote %d synthetic 2D cases %s to %s", n_cases, shape, out_dir)
    return items


def _synthetic_affine(
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


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
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

    Image and label share an oblique affine (see :func:`_synthetic_affine`); every third case,
    starting with ``case_001``, is flipped in x (LAS). qform and sform are set with code 1.
    ``body_scale`` sets the CT body's size (see :func:`synth_volume_3d`). Images are ``float32`` for ``"mr"`` and ``int16`` for ``"ct"``; labels are ``uint8``.

    Returns:
        ``[{"image": Path, "label": Path, "name": "case_000"}, ...]``
    """
    n_cases = _check_n_cases(n_cases)
    shape = _check_shape(shape, 3)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 and math.isfinite(s) for s in spacing):
        raise ConfigError(f"spacing must hold 3 positive values, got {spacing!r}")
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {MODALITIES}, got {modality!r}")
    out_dir = Path(out_dir)
    items = []
    for i, rng in enumerate(_case_rngs(seed, n_cases)):
        image, label = synth_volume_3d(shape, rng, modality=modality, body_scale=body_scale)
        affine = _synthetic_affine(spacing, shape, rng, flip_x=i % 3 == 1)
        name = f"case_{i:03d}"
        image_path = out_dir / "imagesTr" / f"{name}.nii.gz"
        label_path = out_dir / "labelsTr" / f"{name}.nii.gz"
        _save_nifti(image, affine, image_path)
        _save_nifti(label, affine, label_path)
        items.append({IMAGE: image_path, LABEL: label_path, NAME: name})
    logger.info("wrote %d synthetic 3D %s cases %s to %s", n_cases, modality, shape, out_dir)
    return items


def generate_dataset(
    out_dir: str | Path,
    dims: int,
    n_cases: int | None = None,
    shape: Sequence[int] | None = None,
    seed: int = 0,
    **kw: Any,
) -> Path:
    """Write a synthetic dataset: ``dims=2`` -> :func:`make_synthetic_2d`, ``3`` -> :func:`make_synthetic_3d`.

    ``n_cases`` and ``shape`` default to those functions' defaults; other keywords (``rgb``,
    ``spacing``, ``modality``) are passed on. Returns ``out_dir``.
    """
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, got {dims!r}")
    if n_cases is not None:
        kw["n_cases"] = _check_n_cases(n_cases)
    if shape is not None:
        kw["shape"] = _check_shape(shape, dims)
    make = make_synthetic_2d if dims == 2 else make_synthetic_3d
    make(out_dir, seed=seed, **kw)
    return Path(out_dir)
