"""File formats by suffix, and DICOM series folders.

A format name is one short string (``nifti``, ``mha``, ``nrrd``, ``png``, ``tif``, ``jpg``, ``dicom``)
used by the reader choice, the writer registry and ``--output-format``.
"""

from __future__ import annotations

from pathlib import Path

from medseg_monai.errors import InputError

__all__ = [
    "FORMAT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "RASTER_FORMATS",
    "VOLUME_FORMATS",
    "MASK_FORMAT_FOR",
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
    "dicom": "nifti",
}

_DICOM_MAGIC_OFFSET = 128


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


def is_dicom_series_dir(path: str | Path) -> bool:
    """True for a folder holding DICOM files (``*.dcm`` or files with the ``DICM`` preamble)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for child in sorted(path.iterdir())[:64]:
        if not child.is_file() or child.name.startswith("."):
            continue
        if child.suffix.lower() == ".dcm":
            return True
        try:
            with child.open("rb") as handle:
                handle.seek(_DICOM_MAGIC_OFFSET)
                if handle.read(4) == b"DICM":
                    return True
        except OSError:
            continue
    return False


def detect_format(path: str | Path) -> str:
    """Format name of an image file or DICOM series folder.

    Raises:
        ValueError: the suffix is not a supported image format, or a folder holds no DICOM files.
    """
    path = Path(path)
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
        f"supported: {', '.join(IMAGE_SUFFIXES)} or a DICOM series folder"
    )


def spatial_dims_of(path: str | Path) -> int:
    """2 for a raster image (PNG/TIF/JPG/BMP), 3 for a volume (NIfTI, MHA, NRRD, DICOM series)."""
    return 2 if detect_format(path) in RASTER_FORMATS else 3


def mask_filename(source: str | Path, output_format: str | None = None) -> str:
    """File name of the mask written for ``source``: same stem, the mask format's suffix.

    >>> mask_filename("scan.jpg")
    'scan.png'
    >>> mask_filename("ct_series_dir", "nifti")
    'ct_series_dir.nii.gz'
    """
    source = Path(source)
    fmt = output_format or MASK_FORMAT_FOR[detect_format(source)]
    if fmt not in FORMAT_SUFFIXES:
        raise InputError(f"unknown output format {fmt!r}; known: {sorted(FORMAT_SUFFIXES)}")
    stem = source.name if source.is_dir() else split_suffix(source)[0]
    return stem + FORMAT_SUFFIXES[fmt][0]
