"""DICOM header tags of a slice, read with SimpleITK without the pixels, and what they say of a series: its label
(number and description) and whether it is an image to segment at all (not a non-image object, not only
localizer slices)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medseg_monai.errors import InputError

__all__ = ["NON_IMAGE_MODALITIES", "dicom_header", "series_label", "set_aside", "tag"]

#: modalities of DICOM objects that are not images to segment (structure sets, reports, segmentations, states)
NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "SEG", "PR", "KO", "REG", "DOC", "PLAN"}
)


def tag(reader: Any, key: str) -> str:
    """The value of tag ``key`` (``"gggg|eeee"``) of a header :func:`dicom_header` read, stripped; ``""`` if absent."""
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def dicom_header(name: str) -> Any:
    """SimpleITK's reader of one DICOM file, its header read and its pixels not.

    Raises:
        InputError: the file is no readable DICOM slice.
    """

    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(
            f"{name}: unreadable DICOM slice ({str(err).strip().splitlines()[-1] if str(err).strip() else err})"
        ) from err
    return reader


def series_label(name: str) -> str:
    """``series 3 'T1 AX'``: the SeriesNumber and SeriesDescription of the series of file ``name``."""
    reader = dicom_header(name)
    number, description = tag(reader, "0020|0011") or "?", tag(reader, "0008|103e")
    return f"series {number}" + (f" '{description}'" if description else "")


def set_aside(files: Sequence[str]) -> str | None:
    """Why a series is not the image to segment: a non-image object, or only localizer slices; else None."""
    modality = tag(dicom_header(files[0]), "0008|0060").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"a {modality} object"
    if all("LOCALIZER" in tag(dicom_header(name), "0008|0008").upper() for name in files):
        return "a localizer"
    return None
