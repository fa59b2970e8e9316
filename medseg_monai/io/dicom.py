"""DICOM series folders: the one series a folder holds, checked to be whole before it is read.

A folder with several series, a slice that cannot be read, or slices that do not form one evenly spaced
stack (a missing or duplicated slice) is refused with :class:`~medseg_monai.errors.InputError` naming the
folder or file, instead of segmenting part of the data.
"""

from __future__ import annotations

import contextlib
import locale
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.errors import InputError

__all__ = ["NON_IMAGE_MODALITIES", "dicom_series_files", "preserved_locale"]

logger = logging.getLogger(__name__)
_LOCALE_LOCK = threading.RLock()


@contextlib.contextmanager
def preserved_locale() -> Iterator[None]:
    """Restore the process locale after a SimpleITK call: GDCM switches it to ``C`` on some broken DICOM files, which
    would turn Python's default text encoding into ASCII for the rest of the process (unicode paths in manifests)."""
    with _LOCALE_LOCK:  # the read-ahead thread reads too: one SimpleITK call at a time sees and restores the locale
        saved = locale.setlocale(locale.LC_ALL)
        try:
            yield
        finally:
            if locale.setlocale(locale.LC_ALL) != saved:
                locale.setlocale(locale.LC_ALL, saved)


def dicom_series_files(folder: str | Path) -> list[str]:
    """File names of the one DICOM series in ``folder``, in slice order (GDCM's), after checking it is whole.

    Raises:
        InputError: no series, several series in the folder, an unreadable slice, or slices that do not
            form one evenly spaced stack (a missing or a duplicated slice).
    """
    import SimpleITK as sitk

    folder = str(folder)
    with preserved_locale():
        return _series_files(sitk, folder)


#: modalities of DICOM objects that are not images to segment (structure sets, reports, segmentations, states)
NON_IMAGE_MODALITIES = frozenset({"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "SEG", "PR", "KO", "REG", "DOC", "PLAN"})


def _tag(reader: Any, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def _set_aside(reader: Any) -> str | None:
    """Why a series (by its first file) is not the image to segment: a non-image object or a localizer; else None."""
    modality = _tag(reader, "0008|0060").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"a {modality} object"
    if "LOCALIZER" in _tag(reader, "0008|0008").upper():
        return "a localizer"
    return None


def _series_files(sitk: Any, folder: str) -> list[str]:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not series:
        raise InputError(f"{folder}: no DICOM series found")
    files = {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in series}
    if len(series) > 1:
        kept = []
        for uid in series:
            reason = _set_aside(_dicom_header(files[uid][0]))
            if reason is None:
                kept.append(uid)
            else:
                logger.warning("%s: left out series %s (%s, %d files)", folder, uid, reason, len(files[uid]))
        if len(kept) != 1:
            listed = "; ".join(f"{_series_label(files[uid][0])} ({len(files[uid])} files, UID {uid})" for uid in kept or series)
            raise InputError(f"{folder}: {len(kept or series)} DICOM series in one folder: {listed}; give the folder of one series")
        series = kept
    names = files[series[0]]
    _check_dicom_slices(folder, names, {Path(n).resolve() for uid in files for n in files[uid]})
    return names


def _dicom_header(name: str) -> Any:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(f"{name}: unreadable DICOM slice ({str(err).strip().splitlines()[-1] if str(err).strip() else err})") from err
    return reader


def _series_label(name: str) -> str:
    reader = _dicom_header(name)
    number = reader.GetMetaData("0020|0011").strip() if reader.HasMetaDataKey("0020|0011") else "?"
    description = reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""
    return f"series {number}" + (f" '{description}'" if description else "")


def _check_dicom_slices(folder: str, names: Sequence[str], listed: set[Path]) -> None:
    """Every DICOM file of ``folder`` belongs to a series GDCM found, and the chosen series' slices are evenly
    spaced along their normal."""
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name.upper() != "DICOMDIR" and path.resolve() not in listed:
            if path.suffix.lower() == ".dcm" or _has_dicom_magic(path):
                if _set_aside(_dicom_header(str(path))) is not None:  # raises for a broken file
                    continue
                raise InputError(f"{path}: a DICOM file that is not a slice of the series in {folder}")
    if len(names) < 3:
        return
    positions = []
    for name in names:
        reader = _dicom_header(name)
        if not (reader.HasMetaDataKey("0020|0032") and reader.HasMetaDataKey("0020|0037")):
            return  # no patient geometry (e.g. secondary capture): nothing to check against
        try:
            origin = np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            cosines = np.array([float(v) for v in reader.GetMetaData("0020|0037").split("\\")])
        except ValueError:
            return
        positions.append(float(np.dot(np.cross(cosines[:3], cosines[3:6]), origin)))
    ordered = np.sort(np.asarray(positions))
    steps = np.diff(ordered)
    spacing = float(np.median(steps))
    if spacing <= 1e-6 or steps.min() < 0.5 * spacing:
        raise InputError(f"{folder}: two slices share a position ({len(names)} files); the series holds a duplicate slice")
    worst = int(np.argmax(steps))
    if steps[worst] > 1.5 * spacing:
        raise InputError(f"{folder}: missing slice(s): a gap of {steps[worst]:.3g} mm between slice positions "
                         f"{ordered[worst]:.4g} and {ordered[worst + 1]:.4g} mm where the slices are {spacing:.3g} mm apart")


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False
