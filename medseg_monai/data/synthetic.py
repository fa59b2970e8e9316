"""Synthetic segmentation data that looks like a scan, written as a dataset (:func:`generate_dataset`).

Each case has a noisy background, a rotated ellipse (2D) or ellipsoid (3D) "organ" (class 1), a
"lesion" (class 2) made of one to three discs or balls lying strictly inside the organ, and a smooth
intensity gradient (bias field); :mod:`medseg_monai.data.synthetic_scene` draws and renders it.

Files are written in the layouts :func:`medseg_monai.data.datalist.discover_pairs` reads: a flat
folder of PNG images and ``_mask`` PNGs for 2D (:mod:`medseg_monai.data.synthetic_2d`), and
``imagesTr``/``labelsTr`` NIfTI files with an oblique, anisotropic affine for 3D
(:mod:`medseg_monai.data.synthetic_3d`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg_monai.data.synthetic_2d import make_synthetic_2d
from medseg_monai.data.synthetic_3d import make_synthetic_3d
from medseg_monai.data.synthetic_scene import check_n_cases, check_shape
from medseg_monai.errors import ConfigError

__all__ = ["generate_dataset"]


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
        kw["n_cases"] = check_n_cases(n_cases)
    if shape is not None:
        kw["shape"] = check_shape(shape, dims)
    make = make_synthetic_2d if dims == 2 else make_synthetic_3d
    make(out_dir, seed=seed, **kw)
    return Path(out_dir)
