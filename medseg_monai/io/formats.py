"""File formats by suffix, and DICOM series folders.

A format name is one short string (``nifti``, ``mha``, ``nrrd``, ``png``, ``tif``, ``jpg``, ``dicom``)
used by the reader choice, the writer registry and ``--output-format``. ``seg`` (a DICOM Segmentation, ``.dcm``)
is an output format only, for DICOM sources: a ``.dcm`` file is never taken for an image to segment.
"""

from __future__ import annotations

from pathlib import Path

from medseg_monai.errors import InputError
from medseg_monai.io.dicom import is_dicom_input, is_dicom_series_dir, split_series_path
from medseg_monai.io.dicom_discovery import dicom_stem

__all__ = [
    "FORMAT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "RASTER_FORMATS",
    "VOLUME_FORMATS",
    "MASK_FORMAT_FOR",
    "MASK_SUFFIXES",
    "OUTPUT_ONLY_FORMATS",
    "check_output_format",
    "detect_format",
    "is_dicom_series_dir",
    "mask_filename",
    "spatial_dims_of",
    "split_suffix",
]

#: suffixes of each format, lower case, longest first where one ends another
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "nifti": (".nii.gz", ".nii"),
    "mha": (".mha", ".mhd"),
    "nrrd": (".nrrd", ".nhdr"),
    "png": (".png",),
    "tif": (".tif", ".tiff"),
    "jpg": (".jpg", ".jpeg"),
    "bmp": (".bmp",),
}
IMAGE_SUFFIXES: tuple[str, ...] = tuple(s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes)
RASTER_FORMATS = frozenset({"png", "tif", "jpg", "bmp"})
VOLUME_FORMATS = frozenset({"nifti", "mha", "nrrd", "dicom"})

#: format a mask is written in when the source is in the key's format (lossy or read-only formats map away)
MASK_FORMAT_FOR: dict[str, str] = {
    "nifti": "nifti",
    "mha": "mha",
    "nrrd": "nrrd",
    "png": "png",
    "tif": "tif",
    "jpg": "png",
    "bmp": "png",
    "dicom": "seg",
}
#: output formats that are no input format, with their suffixes: a DICOM Segmentation of a DICOM series
OUTPUT_ONLY_FORMATS: dict[str, tuple[str, ...]] = {"seg": (".dcm",)}
#: suffixes of every mask format
MASK_SUFFIXES: dict[str, tuple[str, ...]] = {**FORMAT_SUFFIXES, **OUTPUT_ONLY_FORMATS}


def split_suffix(path: str | Path) -> tuple[str, str]:
    """Split a file name into (stem, known suffix), treating ``.nii.gz`` as one suffix.

    >>> split_suffix("case_01.nii.gz")
    ('case_01', '.nii.gz')
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    p = Path(name)
    return p.stem, p.suffix


def detect_format(path: str | Path) -> str:
    """Format name of an image file or DICOM series folder.

    Raises:
        ValueError: the suffix is not a supported image format, or a folder holds no DICOM files.
    """
    path = Path(path)
    if split_series_path(path)[1] is not None or path.suffix.lower() == ".zip":
        return "dicom"  # one series of a folder or zip, or a zip (read as a DICOM series)
    if path.is_dir():
        if is_dicom_series_dir(path):
            return "dicom"
        raise InputError(f"{path}: folder holds no DICOM files")
    lower = path.name.lower()
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        if lower.endswith(suffixes):
            return fmt
    raise InputError(
        f"{path}: unsupported image format {Path(lower).suffix or '(no suffix)'!r}; "
        f"supported: {', '.join(IMAGE_SUFFIXES)}, a DICOM series folder or a .zip of one"
    )


def spatial_dims_of(path: str | Path) -> int:
    """2 for a raster image (PNG/TIF/JPG/BMP), 3 for a volume (NIfTI, MHA, NRRD, DICOM series)."""
    return 2 if detect_format(path) in RASTER_FORMATS else 3


def check_output_format(source: str | Path, fmt: str) -> None:
    """Refuse a mask format ``source`` cannot be written in: an unknown one, or ``seg`` for a source that is no DICOM
    series."""
    if fmt not in MASK_SUFFIXES:
        raise InputError(f"unknown output format {fmt!r}; known: {sorted(MASK_SUFFIXES)}")
    if fmt in OUTPUT_ONLY_FORMATS and detect_format(source) != "dicom":
        raise InputError(
            f"{source}: a DICOM SEG ({fmt!r}) needs a DICOM series source, this is a {detect_format(source)} image; "
            "choose another --output-format (nifti, mha, nrrd)"
        )


def mask_filename(source: str | Path, output_format: str | None = None) -> str:
    """File name of the mask written for ``source``: same stem, the mask format's suffix.

    A DICOM folder's stem is its name, a zip's its stem, one series of a folder holding several
    ``<folder>_s<SeriesNumber>_<SeriesDescription>`` (:func:`~medseg_monai.io.dicom_discovery.dicom_stem`).

    >>> mask_filename("scan.jpg")
    'scan.png'
    >>> mask_filename("ct_series_dir", "nifti")
    'ct_series_dir.nii.gz'
    """
    source = Path(source)
    fmt = output_format or MASK_FORMAT_FOR[detect_format(source)]
    check_output_format(source, fmt)
    if is_dicom_input(source):
        stem = dicom_stem(source)
    else:
        stem = source.name if source.is_dir() else split_suffix(source)[0]
    return stem + MASK_SUFFIXES[fmt][0]
