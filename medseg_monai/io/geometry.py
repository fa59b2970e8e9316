"""The voxel grid of an image read from its header (:func:`read_geometry`), and ITK geometry as affines.

``shape`` is in the readers' index order (:mod:`medseg_monai.io.readers`): ``(X, Y, Z)`` for volumes, ``(H, W)``
for raster images; ``affine_ras`` is the index-to-RAS matrix the readers put in ``meta["affine"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from monai.data.utils import correct_nifti_header_if_necessary, orientation_ras_lps

from medseg_monai.errors import InputError
from medseg_monai.io.formats import RASTER_FORMATS, detect_format
from medseg_monai.io.opening import named_errors, read_sitk, require_exists
from medseg_monai.io.seg_files import is_seg_file, seg_grid
from medseg_monai.io.validation import check_nifti_pixdim

__all__ = ["Geometry", "geometry_from_lps", "lps_affine", "read_geometry"]


def lps_affine(direction: Sequence[float], spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """Homogeneous ``(d+1, d+1)`` index-to-LPS affine of an ITK geometry (``direction`` row-major, flat)."""
    dim = len(spacing)
    affine = np.eye(dim + 1)
    affine[:dim, :dim] = np.asarray(direction, dtype=float).reshape(dim, dim) @ np.diag(
        np.asarray(spacing, dtype=float)
    )
    affine[:dim, dim] = np.asarray(origin, dtype=float)
    return affine


def _to_4x4(affine: np.ndarray) -> np.ndarray:
    """Embed a 2D ``3x3`` affine into ``4x4`` (the third axis unit, at 0)."""
    if affine.shape == (4, 4):
        return affine
    dim = affine.shape[0] - 1
    out = np.eye(4)
    out[:dim, :dim] = affine[:dim, :dim]
    out[:dim, 3] = affine[:dim, dim]
    return out


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image, read from its header.

    ``shape`` is spatial in the readers' index order (``(X, Y, Z)``; ``(H, W)`` for raster); ``origin``
    and ``direction`` (row-major, columns are the axes) are in LPS as SimpleITK reports them;
    ``affine_ras`` is the 4x4 index-to-RAS matrix MONAI's readers put in ``meta["affine"]``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    affine_ras: tuple[tuple[float, ...], ...]
    format: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def direction_flat(self) -> tuple[float, ...]:
        return tuple(v for row in self.direction for v in row)


def _nested(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(matrix))


def geometry_from_lps(shape, spacing, origin, direction, fmt: str) -> Geometry:
    """A :class:`Geometry` from ITK-style values (``direction`` flat row-major)."""
    dim = len(spacing)
    affine = _to_4x4(orientation_ras_lps(lps_affine(direction, spacing, origin)))
    return Geometry(
        shape=tuple(int(s) for s in shape),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=_nested(np.asarray(direction, dtype=float).reshape(dim, dim)),
        affine_ras=_nested(affine),
        format=fmt,
    )


def _nifti_geometry(path: str) -> Geometry:
    import nibabel as nib

    check_nifti_pixdim(path)  # before nibabel reads a voxel size of 0 as 1 mm
    img = correct_nifti_header_if_necessary(nib.load(path))  # what NibabelReader does
    header = img.header
    ndim = int(header["dim"][0])
    spatial = max(min(ndim, 3), 1)
    shape = tuple(int(s) for s in header["dim"][1 : 1 + spatial])
    affine = np.asarray(img.affine, dtype=float)  # RAS, 4x4 even for 2D
    linear = affine[:spatial, :spatial]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / np.where(spacing > 0, spacing, 1.0)
    flip = np.diag([-1.0, -1.0, 1.0][:spatial] if spatial > 1 else [-1.0])
    return Geometry(
        shape=shape,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in flip @ affine[:spatial, 3]),
        direction=_nested(flip @ direction),
        affine_ras=_nested(affine),
        format="nifti",
    )


def _raster_geometry(path: str, fmt: str) -> Geometry:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot read image ({err})") from err
    return Geometry((height, width), (1.0, 1.0), (0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), _nested(np.eye(4)), fmt)


def read_geometry(path: str | Path) -> Geometry:
    """Voxel grid of an image file, DICOM input or DICOM SEG mask, without loading the pixels where the format
    allows.

    NIfTI geometry comes from nibabel (the affine ``NibabelReader`` gives), MHA/NRRD from SimpleITK's
    ``ReadImageInformation``; a DICOM series is read whole so the slice spacing is the one
    ``ImageSeriesReader`` computes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported format or unreadable header.
    """
    path = str(path)
    require_exists(path)
    if is_seg_file(path):  # a DICOM SEG mask: the grid of its source series
        with named_errors(path):
            return geometry_from_lps(*seg_grid(path), "seg")
    fmt = detect_format(path)
    if fmt in RASTER_FORMATS:
        return _raster_geometry(path, fmt)
    if fmt == "nifti":
        with named_errors(path):
            return _nifti_geometry(path)
    info = read_sitk(path, information_only=True)
    dim = info.GetDimension()
    n = max(min(dim, 3), 1)  # a 4D file keeps its first three axes, as the readers do
    direction = np.asarray(info.GetDirection()).reshape(dim, dim)[:n, :n].ravel()
    return geometry_from_lps(info.GetSize()[:n], info.GetSpacing()[:n], info.GetOrigin()[:n], direction, fmt)
