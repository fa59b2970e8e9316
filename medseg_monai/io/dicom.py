"""DICOM inputs: series folders, ``.zip`` archives of them, and one series of a folder holding several.

A DICOM input is a folder, a ``.zip`` (extracted to a temporary folder for each read, removed after it; the
archive is never modified), or one series of either, written ``<folder or zip>#series=<SeriesInstanceUID>``
(:class:`DicomSeries`, made by :func:`expand_dicom_inputs` for containers of several series). A series is
checked whole before it is read: a slice that cannot be read, or slices that do not form one evenly spaced
stack (a missing or duplicated slice), are refused with :class:`~medseg_monai.errors.InputError` naming the
folder or file. Localizer slices (ImageType ``LOCALIZER``, or another orientation than the series') are left
out with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import locale
import logging
import re
import shutil
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np

from medseg_monai.errors import InputError

__all__ = [
    "NON_IMAGE_MODALITIES",
    "SERIES_MARK",
    "DicomSeries",
    "SeriesInfo",
    "dicom_folder",
    "dicom_series_files",
    "dicom_stem",
    "expand_dicom_inputs",
    "is_dicom_input",
    "is_dicom_series_dir",
    "is_dicom_zip",
    "list_series",
    "preserved_locale",
    "split_series_path",
]

logger = logging.getLogger(__name__)
_LOCALE_LOCK = threading.RLock()

#: what joins a folder (or zip) and a SeriesInstanceUID in the path of one of its series
SERIES_MARK = "#series="
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DICOM_MAGIC_OFFSET = 128
#: modalities of DICOM objects that are not images to segment (structure sets, reports, segmentations, states)
NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "SEG", "PR", "KO", "REG", "DOC", "PLAN"}
)
#: largest difference of two slices' ImageOrientationPatient cosines for them to share the series' grid
ORIENTATION_TOLERANCE = 1e-3


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


# ---------------------------------------------------------------------------------------------- what an input is
@dataclasses.dataclass(frozen=True)
class DicomSeries:
    """One series of a DICOM folder or zip; as a path (:attr:`path`, ``os.fspath``) ``<container>#series=<UID>``."""

    container: Path
    uid: str

    def __post_init__(self) -> None:
        if not _UID.match(self.uid):
            raise InputError(f"{self.container}: {self.uid!r} is not a DICOM UID (digits and dots)")
        object.__setattr__(self, "container", Path(self.container))

    @property
    def path(self) -> Path:
        return Path(f"{self.container}{SERIES_MARK}{self.uid}")

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def split_series_path(path: str | Path) -> tuple[Path, str | None]:
    """``(container, uid)`` of a series path ``<container>#series=<UID>``; ``(path, None)`` for any other path."""
    text = str(path)
    head, mark, uid = text.rpartition(SERIES_MARK)
    if mark and head and _UID.match(uid) and not Path(text).exists():
        return Path(head), uid
    return Path(text), None


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(_DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_series_dir(path: str | Path) -> bool:
    """True for a folder holding DICOM files (``*.dcm`` or files with the ``DICM`` preamble)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for child in sorted(path.iterdir())[:64]:
        if (
            child.is_file()
            and not child.name.startswith(".")
            and (child.suffix.lower() == ".dcm" or _has_dicom_magic(child))
        ):
            return True
    return False


def is_dicom_zip(path: str | Path) -> bool:
    """True for a ``.zip`` file (its content is checked when it is read)."""
    path = Path(path)
    return path.suffix.lower() == ".zip" and path.is_file()


def is_dicom_input(path: str | Path) -> bool:
    """A DICOM series folder, a ``.zip``, or one series of either (``<container>#series=<UID>``)."""
    container, uid = split_series_path(path)
    return is_dicom_zip(container) or (container.is_dir() and (uid is not None or is_dicom_series_dir(container)))


# ---------------------------------------------------------------------------------------------- zip archives
def _skipped_member(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return not parts or parts[0] == "__MACOSX" or parts[-1].startswith(".") or parts[-1].upper() == "DICOMDIR"


def _extract_zip(archive: Path, target: Path) -> dict[str, str]:
    """Extract the files of ``archive`` flat into ``target`` (no paths from the archive are used); ``{file: member}``."""
    names: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir() and not _skipped_member(m.filename)]
            need, free = sum(m.file_size for m in members), shutil.disk_usage(target).free
            if need > free:
                raise InputError(
                    f"{archive}: extracting needs {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free in {target.parent}"
                )
            for index, member in enumerate(members):
                base = re.sub(r"[^\w.-]+", "_", PurePosixPath(member.filename).name) or "file"
                flat = base if base not in names else f"{index:06d}_{base}"
                with zipped.open(member) as source, open(target / flat, "wb") as out:
                    shutil.copyfileobj(source, out)
                names[flat] = member.filename
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError, OSError) as err:
        raise InputError(f"{archive}: not a readable zip archive ({err or type(err).__name__})") from err
    if not is_dicom_series_dir(target):
        raise InputError(f"{archive}: the zip holds no DICOM files ({len(names)} other file(s))")
    return names


def _named_in_zip(message: str, folder: Path, archive: Path, names: dict[str, str]) -> str:
    """``message`` with the temporary folder's files named as the archive's members."""
    pattern = re.compile(re.escape(str(folder)) + r"(?:/([^\s:;,()]+))?")
    return pattern.sub(lambda m: f"{names.get(m[1], m[1])} in {archive}" if m[1] else str(archive), message)


@contextlib.contextmanager
def dicom_folder(path: str | Path) -> Iterator[tuple[Path, str | None]]:
    """``(folder, uid)`` to read a DICOM input from: the folder itself, or a zip's temporary extraction (removed on
    exit); ``uid`` is the series of a series path, else ``None``. Errors inside name the zip, not the temporary folder."""
    container, uid = split_series_path(path)
    if not is_dicom_zip(container):
        yield container, uid
        return
    with tempfile.TemporaryDirectory(prefix="medseg-dicom-zip-") as tmp:
        folder = Path(tmp)
        names = _extract_zip(container, folder)
        try:
            yield folder, uid
        except InputError as err:
            raise InputError(_named_in_zip(str(err), folder, container, names)) from None


# ---------------------------------------------------------------------------------------------- one series
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


def _tag(reader: Any, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def _set_aside(files: Sequence[str]) -> str | None:
    """Why a series is not the image to segment: a non-image object, or only localizer slices; else None."""
    modality = _tag(_dicom_header(files[0]), "0008|0060").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"a {modality} object"
    if all("LOCALIZER" in _tag(_dicom_header(name), "0008|0008").upper() for name in files):
        return "a localizer"
    return None


def _listed(folder: str, files: dict[str, list[str]], uids: Sequence[str]) -> str:
    return "; ".join(f"{_series_label(files[uid][0])} ({len(files[uid])} files, UID {uid})" for uid in uids)


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
            reason = _set_aside(files[s])
            if reason is None:
                kept.append(s)
            else:
                logger.warning("%s: left out series %s (%s, %d files)", folder, s, reason, len(files[s]))
        if len(kept) != 1:
            raise InputError(
                f"{folder}: {len(kept or series)} DICOM series in one folder: {_listed(folder, files, kept or series)}; "
                "give the folder of one series, or predict the folder to get one output per series (--series UID picks one)"
            )
        series = tuple(kept)
    _check_stray_files(folder, {Path(n).resolve() for s in files for n in files[s]})
    slices = _on_grid(folder, [_slice(name) for name in files[series[0]]])
    _check_spacing(folder, slices)
    return [s.name for s in slices]


def _dicom_header(name: str) -> Any:
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


def _series_label(name: str) -> str:
    reader = _dicom_header(name)
    number, description = _tag(reader, "0020|0011") or "?", _tag(reader, "0008|103e")
    return f"series {number}" + (f" '{description}'" if description else "")


@dataclasses.dataclass(frozen=True)
class _Slice:
    name: str
    localizer: bool
    orientation: np.ndarray | None  # ImageOrientationPatient, 6 cosines
    position: np.ndarray | None  # ImagePositionPatient


def _numbers(reader: Any, key: str, count: int) -> np.ndarray | None:
    try:
        values = np.array([float(v) for v in _tag(reader, key).split("\\")])
    except ValueError:
        return None
    return values if values.size == count else None


def _slice(name: str) -> _Slice:
    reader = _dicom_header(name)
    return _Slice(
        name,
        "LOCALIZER" in _tag(reader, "0008|0008").upper(),
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
            if path.suffix.lower() == ".dcm" or _has_dicom_magic(path):
                if _set_aside([str(path)]) is not None:  # raises for a broken file
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


# ---------------------------------------------------------------------------------------------- several series
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
            header = _dicom_header(files[0])
            infos.append(
                SeriesInfo(
                    uid,
                    _tag(header, "0020|0011"),
                    _tag(header, "0008|103e"),
                    len(files),
                    _set_aside(files) if len(uids) > 1 else None,
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
    series (:class:`DicomSeries`); with ``series`` (a SeriesInstanceUID) DICOM containers keep only that series, and
    containers without it are left out (warned). A container that cannot be listed stays as it is (its read reports why).

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
