"""The series of a DICOM folder or zip: listing them (:func:`list_series`, cached), naming the outputs of each
(:func:`dicom_stem`), and turning a container of several image series into one input per series
(:func:`expand_dicom_inputs`)."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from medseg_monai.errors import InputError
from medseg_monai.io.dicom import DicomSeries, dicom_folder, is_dicom_input, preserved_locale, split_series_path
from medseg_monai.io.dicom_tags import dicom_header, set_aside, tag

__all__ = ["SeriesInfo", "dicom_stem", "expand_dicom_inputs", "list_series"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """One series of a DICOM container: its UID, SeriesNumber, SeriesDescription, file count, and why it is no
    image to segment (``None`` for an image series)."""

    uid: str
    number: str
    description: str
    files: int
    set_aside: str | None


_SERIES_CACHE: dict[tuple[Any, ...], tuple[SeriesInfo, ...]] = {}
_CACHE_LOCK = threading.Lock()


def list_series(path: str | Path) -> tuple[SeriesInfo, ...]:
    """The series of a DICOM folder or zip (GDCM's order); cached while the container's size and time stamp stay.

    Raises:
        InputError: the container cannot be read (a corrupt zip, a zip without DICOM, an unreadable slice).
    """
    import SimpleITK as sitk

    container = split_series_path(path)[0]
    stat = container.stat()
    key = (str(container.resolve()), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    with _CACHE_LOCK:
        if key in _SERIES_CACHE:
            return _SERIES_CACHE[key]
    with dicom_folder(container) as (folder, _), preserved_locale():
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        infos = []
        for uid in uids:
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
            header = dicom_header(files[0])
            infos.append(
                SeriesInfo(
                    uid,
                    tag(header, "0020|0011"),
                    tag(header, "0008|103e"),
                    len(files),
                    set_aside(files) if len(uids) > 1 else None,
                )
            )
    with _CACHE_LOCK:
        if len(_SERIES_CACHE) > 256:
            _SERIES_CACHE.clear()
        _SERIES_CACHE[key] = tuple(infos)
    return tuple(infos)


def _clean(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._-")[:limit].rstrip("._-")


def _series_names(stem: str, infos: Sequence[SeriesInfo]) -> dict[str, str]:
    """``<stem>_s003_T1_AX`` per series UID (number, description) of the image series ``infos``; the UID's last part or
    the UID where they clash."""
    names = {}
    for info in infos:
        number = (
            f"s{int(info.number):03d}" if info.number.isdigit() else _clean(info.number) and f"s{_clean(info.number)}"
        )
        parts = [part for part in (number, _clean(info.description)) if part]
        names[info.uid] = "_".join([stem, *parts]) if parts else f"{stem}_{info.uid}"
    counts = Counter(names.values())
    for uid, name in list(names.items()):
        if counts[name] > 1:
            names[uid] = f"{name}_{uid.rsplit('.', 1)[-1]}"
    counts = Counter(names.values())
    return {uid: (name if counts[name] == 1 else f"{stem}_{uid}") for uid, name in names.items()}


def dicom_stem(path: str | Path) -> str:
    """Name of the outputs of a DICOM input: the folder's name, the zip's stem, or for one series of a container
    ``<stem>_s<SeriesNumber>_<SeriesDescription>`` (sanitised)."""
    container, uid = split_series_path(path)
    stem = container.stem if container.suffix.lower() == ".zip" else container.name
    if uid is None:
        return stem
    names = _series_names(stem, [info for info in list_series(container) if info.set_aside is None])
    if uid not in names:
        raise InputError(f"{container}: no DICOM series with SeriesInstanceUID {uid}")
    return names[uid]


T = TypeVar("T")


def expand_dicom_inputs(sources: Sequence[T], series: str | None = None) -> list[T | Path]:
    """``sources`` with each DICOM folder or zip (a ``Path``) of several image series replaced by one series path per
    series (:class:`~medseg_monai.io.dicom.DicomSeries`); with ``series`` (a SeriesInstanceUID) DICOM containers keep
    only that series, and containers without it are left out (warned). A container that cannot be listed stays as it
    is (its read reports why).

    Raises:
        InputError: ``series`` is in none of the DICOM inputs.
    """
    out: list[T | Path] = []
    found, containers = False, []
    for source in sources:
        if not isinstance(source, Path) or split_series_path(source)[1] is not None or not is_dicom_input(source):
            out.append(source)
            continue
        containers.append(source)
        try:
            images = [info for info in list_series(source) if info.set_aside is None]
        except InputError as err:
            logger.debug("%s: cannot list its series (%s); read as it is", source, err)
            out.append(source)
            continue
        if series is not None:
            if series not in {info.uid for info in images}:
                logger.warning("%s: no series %s (--series); left out", source, series)
                continue
            found = True
            out.append(source if len(images) == 1 else DicomSeries(source, series).path)
        else:
            out.extend([source] if len(images) <= 1 else [DicomSeries(source, info.uid).path for info in images])
    if series is not None and not found:
        where = ", ".join(str(c) for c in containers[:5]) + (" ..." if len(containers) > 5 else "") or "no DICOM inputs"
        raise InputError(f"--series {series}: no DICOM series with this SeriesInstanceUID in the inputs ({where})")
    return out
