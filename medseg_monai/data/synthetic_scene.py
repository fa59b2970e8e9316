"""The scene of a synthetic case and its rendering, shared by the 2D and 3D generators.

A scene is drawn in voxel space: a rotated ellipse (2D) or ellipsoid (3D) "organ" (class 1) holding one to three
discs or balls, the "lesion" (class 2), lying strictly inside it. Labels and images are rendered slab by slab in
``float32``, so a CT-sized volume (512 x 512 x 400) takes a few seconds and little memory beyond its output
arrays; the image adds a smooth intensity gradient (bias field) and Gaussian noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg_monai.errors import ConfigError

__all__ = [
    "Scene",
    "as_rng",
    "bias_terms",
    "case_rngs",
    "check_n_cases",
    "check_shape",
    "render_image",
    "render_label",
    "sample_scene",
]

_MIN_SIZE = 16  # smallest accepted extent of a spatial axis
_SLAB_VOXELS = 1 << 22  # voxels rendered per slab (~16 MiB per float32 temporary)
_LESION_MARGIN = 2.0  # voxels between a lesion and the organ boundary
_MIN_LESION_RADIUS = 4.0


@dataclass(frozen=True)
class Scene:
    """Geometry of one case in voxel coordinates."""

    centre: np.ndarray  # (n,) organ centre
    axes: np.ndarray  # (n, n) columns are the organ's semi-axis vectors
    lesions: tuple[tuple[np.ndarray, float], ...]  # (centre, radius) of each lesion ball


def check_shape(shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    """``shape`` as ``ndim`` ints of at least 16 each, else ``ConfigError``."""
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


def sample_scene(shape: tuple[int, ...], rng: np.random.Generator, extent: float = 1.0) -> Scene:
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
    return Scene(centre=centre, axes=axes, lesions=tuple(lesions))


def _slabs(shape: tuple[int, ...]) -> list[slice]:
    """Slices along axis 0 that hold about ``_SLAB_VOXELS`` voxels each."""
    per_row = int(np.prod(shape[1:]))
    step = max(1, _SLAB_VOXELS // per_row)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def render_label(scene: Scene, shape: tuple[int, ...]) -> np.ndarray:
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


def bias_terms(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> list[np.ndarray]:
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


def render_image(
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


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself, or a generator seeded with it."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def case_rngs(seed: int, n_cases: int) -> list[np.random.Generator]:
    """One generator per case; case ``i`` depends only on ``(seed, i)``, not on ``n_cases``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_cases)]


def check_n_cases(n_cases: int) -> int:
    """``n_cases`` as a positive int, else ``ConfigError``."""
    if int(n_cases) != n_cases or n_cases < 1:
        raise ConfigError(f"n_cases must be a positive integer, got {n_cases!r}")
    return int(n_cases)
