"""Writers of per-voxel maps beside a mask: class probabilities and uncertainty, in the source's grid and geometry.

Arrays arrive in the readers' index order, like masks (``(H, W)`` raster, ``(X, Y, Z)`` volumes):
probabilities ``(K, *spatial)``, scalar maps ``(*spatial)``. Volumes are written in the source's format
(NIfTI keeps the source's header, qform and sform; MHA/NRRD the origin, spacing and direction; DICOM
series get NIfTI): probabilities as a 4D NIfTI with the classes along the fourth axis, or an MHA/NRRD
vector image with one component per class. Raster sources get TIFF: one page per class. Files are
written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medseg_monai.errors import InputError, OutputError
from medseg_monai.io.formats import RASTER_FORMATS, detect_format, split_suffix
from medseg_monai.io.geometry import Geometry, read_geometry
from medseg_monai.io.writers import nifti_like, sitk_image
from medseg_monai.utils import atomic_path

__all__ = ["MAP_SUFFIX", "map_path", "read_map_info", "write_probability_map", "write_scalar_map"]

logger = logging.getLogger(__name__)

#: suffix of the maps of a source in each format (DICOM series: NIfTI; raster: TIFF)
MAP_SUFFIX = {"nifti": ".nii.gz", "mha": ".mha", "nrrd": ".nrrd", "dicom": ".nii.gz"}


def map_path(source: str | Path, output_dir: str | Path, kind: str, stem: str | None = None) -> Path:
    """Where the ``kind`` map (``probabilities``, ``entropy``) of ``source`` goes: ``<stem>_<kind><suffix>``
    (``stem``: the mask's name without suffix; default the source's)."""
    source = Path(source)
    fmt = detect_format(source)
    suffix = ".tif" if fmt in RASTER_FORMATS else MAP_SUFFIX[fmt]
    if stem is None:
        stem = source.name if source.is_dir() else split_suffix(source)[0]
    return Path(output_dir) / f"{stem}_{kind}{suffix}"


def read_map_info(path: str | Path) -> tuple[tuple[int, ...], int, np.dtype]:
    """``(spatial shape, values per voxel, dtype)`` of a written map, from its header (TIFF: its pages)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        from PIL import Image

        with Image.open(path) as image:
            dtype = np.dtype(np.float32) if image.mode == "F" else np.dtype(np.uint8)
            return (image.height, image.width), int(getattr(image, "n_frames", 1)), dtype
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        header = nib.load(str(path)).header
        shape = tuple(int(s) for s in header.get_data_shape())
        return shape[:3], int(np.prod(shape[3:], dtype=int)), np.dtype(header.get_data_dtype())
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    dtype = np.dtype(
        sitk.GetArrayViewFromImage(
            sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(), reader.GetNumberOfComponents())
        ).dtype
    )
    return tuple(int(s) for s in reader.GetSize()), int(reader.GetNumberOfComponents()), dtype


def _checked(array: np.ndarray, geometry: Geometry, output: Path, leading: int) -> np.ndarray:
    array = np.asarray(array)
    if tuple(array.shape[leading:]) != tuple(geometry.shape) or array.ndim != geometry.ndim + leading:
        raise InputError(
            f"{output}: map shape {tuple(array.shape)} does not match the source's spatial shape {geometry.shape}"
        )
    if array.dtype not in (np.uint8, np.float32):
        raise InputError(f"{output}: maps are uint8 or float32, got {array.dtype}")
    return array


def write_probability_map(probs: np.ndarray, source: str | Path, output: str | Path) -> Path:
    """Write ``(K, *spatial)`` class probabilities (``uint8`` 0..255 or ``float32``) with ``source``'s geometry."""
    return _write_map(probs, source, output, per_class=True)


def write_scalar_map(values: np.ndarray, source: str | Path, output: str | Path) -> Path:
    """Write a ``(*spatial)`` map (``float32`` or ``uint8``) with ``source``'s geometry."""
    return _write_map(values, source, output, per_class=False)


def _write_map(array: np.ndarray, source: str | Path, output: str | Path, per_class: bool) -> Path:
    source, output = Path(source), Path(output)
    geometry = read_geometry(source)
    array = _checked(array, geometry, output, int(per_class))
    with atomic_path(output) as tmp:
        if geometry.format in RASTER_FORMATS:
            _write_pages(list(array) if per_class else [array], tmp)
        elif output.name.lower().endswith((".nii", ".nii.gz")):
            _write_nifti(np.moveaxis(array, 0, -1) if per_class else array, source, geometry, tmp)
        else:
            _write_itk(array, geometry, tmp, output, vector=per_class)
    logger.debug("wrote %s (%s, %s)", output, tuple(array.shape), array.dtype)
    return output


def _write_nifti(data: np.ndarray, source: Path, geometry: Geometry, tmp: Path) -> None:
    img = nifti_like(data, source, geometry)
    img.header.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, 255 if data.dtype == np.uint8 else float(data.max(initial=0.0))
    img.to_filename(str(tmp))


def _write_itk(data: np.ndarray, geometry: Geometry, tmp: Path, output: Path, vector: bool) -> None:
    import SimpleITK as sitk

    try:
        sitk.WriteImage(sitk_image(data, geometry, vector), str(tmp), useCompression=True)
    except RuntimeError as err:  # SimpleITK reports a failed write (a full disk) as RuntimeError
        raise OutputError(f"{output}: cannot write the map ({str(err).strip().splitlines()[-1]})") from err


def _write_pages(pages: list[np.ndarray], tmp: Path) -> None:
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(page)) for page in pages]  # mode L (uint8) or F (float32)
    images[0].save(
        tmp,
        format="TIFF",
        save_all=True,
        append_images=images[1:],
        compression="tiff_lzw" if pages[0].dtype == np.uint8 else None,
    )
