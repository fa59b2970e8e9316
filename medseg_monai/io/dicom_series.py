"""One DICOM series, checked whole before it is read: its files in slice order (GDCM's), localizer slices and
slices of another orientation left out (warned), and refused with :class:`~medseg_monai.errors.InputError` naming
the folder or file when a slice cannot be read, a DICOM file belongs to no series, or the slices do not form one
evenly spaced stack (a missing or duplicated slice)."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.errors import InputError
from medseg_monai.io.dicom import has_dicom_magic, preserved_locale
from medseg_monai.io.dicom_tags import dicom_header, series_label, set_aside, tag

__all__ = ["ORIENTATION_TOLERANCE", "dicom_series_files"]

logger = logging.getLogger(__name__)

#: largest difference of two slices' ImageOrientationPatient cosines for them to share the series' grid
ORIENTATION_TOLERANCE = 1e-3


def dicom_series_files(folder: str | Path, uid: str | None = None) -> list[str]:
    """File names of one DICOM series in ``folder`` (``uid``; default the one image series), in slice order
    (GDCM's), localizer slices left out, after checking the series is whole.

    Raises:
        InputError: no series, no series ``uid``, several series in the folder and no ``uid``, an unreadable slice,
            or slices that do not form one evenly spaced stack (a missing or a duplicated slice).
    """
    import SimpleITK as sitk

    folder = str(folder)
    with preserved_locale():
        return _series_files(sitk, folder, uid)


def _listed(folder: str, files: dict[str, list[str]], uids: Sequence[str]) -> str:
    return "; ".join(f"{series_label(files[uid][0])} ({len(files[uid])} files, UID {uid})" for uid in uids)


def _series_files(sitk: Any, folder: str, uid: str | None) -> list[str]:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not series:
        raise InputError(f"{folder}: no DICOM series found")
    files = {s: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, s)) for s in series}
    if uid is not None:
        if uid not in files:
            raise InputError(
                f"{folder}: no DICOM series with SeriesInstanceUID {uid}; it holds {_listed(folder, files, series)}"
            )
        series = (uid,)
    elif len(series) > 1:
        kept = []
        for s in series:
            reason = set_aside(files[s])
            if reason is None:
                kept.append(s)
            else:
                logger.warning("%s: left out series %s (%s, %d files)", folder, s, reason, len(files[s]))
        if len(kept) != 1:
            raise InputError(
                f"{folder}: {len(kept or series)} DICOM series in one folder: "
                f"{_listed(folder, files, kept or series)}; give the folder of one series, or predict the folder "
                "to get one output per series (--series UID picks one)"
            )
        series = tuple(kept)
    _check_stray_files(folder, {Path(n).resolve() for s in files for n in files[s]})
    slices = _on_grid(folder, [_slice(name) for name in files[series[0]]])
    _check_spacing(folder, slices)
    return [s.name for s in slices]


@dataclasses.dataclass(frozen=True)
class _Slice:
    name: str
    localizer: bool
    orientation: np.ndarray | None  # ImageOrientationPatient, 6 cosines
    position: np.ndarray | None  # ImagePositionPatient


def _numbers(reader: Any, key: str, count: int) -> np.ndarray | None:
    try:
        values = np.array([float(v) for v in tag(reader, key).split("\\")])
    except ValueError:
        return None
    return values if values.size == count else None


def _slice(name: str) -> _Slice:
    reader = dicom_header(name)
    return _Slice(
        name,
        "LOCALIZER" in tag(reader, "0008|0008").upper(),
        _numbers(reader, "0020|0037", 6),
        _numbers(reader, "0020|0032", 3),
    )


def _on_grid(folder: str, slices: list[_Slice]) -> list[_Slice]:
    """The slices of the series' grid: localizers and slices of another orientation than most are left out (warned),
    the rest sorted along the slice normal when any was left out."""
    kept = [s for s in slices if not s.localizer]
    oriented = [s for s in kept if s.orientation is not None]
    main = None
    if oriented:
        main = np.array(Counter(tuple(np.round(s.orientation, 3)) for s in oriented).most_common(1)[0][0])
        kept = [s for s in kept if s.orientation is None or np.abs(s.orientation - main).max() <= ORIENTATION_TOLERANCE]
    if len(kept) == len(slices):
        return slices
    if not kept:
        raise InputError(f"{folder}: every one of the {len(slices)} slices is a localizer; no image series to segment")
    left = sorted(Path(s.name).name for s in slices if s not in kept)
    logger.warning(
        "%s: left out %d localizer slice(s) not on the series' grid (%s)",
        folder,
        len(left),
        ", ".join(left[:5]) + (" ..." if len(left) > 5 else ""),
    )
    if main is not None and all(s.position is not None for s in kept):
        normal = np.cross(main[:3], main[3:])
        kept.sort(key=lambda s: float(np.dot(normal, s.position)))
    return kept


def _check_stray_files(folder: str, listed: set[Path]) -> None:
    """Every DICOM file of ``folder`` belongs to a series GDCM found (or is a non-image object set aside)."""
    for path in sorted(Path(folder).iterdir()):
        if (
            path.is_file()
            and not path.name.startswith(".")
            and path.name.upper() != "DICOMDIR"
            and path.resolve() not in listed
        ):
            if path.suffix.lower() == ".dcm" or has_dicom_magic(path):
                if set_aside([str(path)]) is not None:  # raises for a broken file
                    continue
                raise InputError(f"{path}: a DICOM file that is not a slice of the series in {folder}")


def _check_spacing(folder: str, slices: Sequence[_Slice]) -> None:
    """The slices are evenly spaced along their normal (no slice missing or duplicated)."""
    if len(slices) < 3 or any(s.orientation is None or s.position is None for s in slices):
        return  # no patient geometry (e.g. secondary capture): nothing to check against
    positions = [float(np.dot(np.cross(s.orientation[:3], s.orientation[3:]), s.position)) for s in slices]
    ordered = np.sort(np.asarray(positions))
    steps = np.diff(ordered)
    spacing = float(np.median(steps))
    if spacing <= 1e-6 or steps.min() < 0.5 * spacing:
        raise InputError(
            f"{folder}: two slices share a position ({len(slices)} files); the series holds a duplicate slice"
        )
    worst = int(np.argmax(steps))
    if steps[worst] > 1.5 * spacing:
        raise InputError(
            f"{folder}: missing slice(s): a gap of {steps[worst]:.3g} mm between slice positions "
            f"{ordered[worst]:.4g} and {ordered[worst + 1]:.4g} mm where the slices are {spacing:.3g} mm apart"
        )
