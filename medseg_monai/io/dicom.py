"""DICOM inputs: series folders, ``.zip`` archives of them, and one series of a folder holding several.

A DICOM input is a folder, a ``.zip`` (extracted to a temporary folder for each read, removed after it; the
archive is never modified), or one series of either, written ``<folder or zip>#series=<SeriesInstanceUID>``
(:class:`DicomSeries`, made by :func:`~medseg_monai.io.dicom_discovery.expand_dicom_inputs` for containers of
several series). This module says what is a DICOM input and opens it (:func:`dicom_folder`); a series is checked
whole before it is read (:mod:`medseg_monai.io.dicom_series`), and the series of a container are listed and named
by :mod:`medseg_monai.io.dicom_discovery`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import locale
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from medseg_monai.errors import InputError

__all__ = [
    "SERIES_MARK",
    "DicomSeries",
    "dicom_folder",
    "has_dicom_magic",
    "is_dicom_input",
    "is_dicom_series_dir",
    "is_dicom_zip",
    "preserved_locale",
    "split_series_path",
]

_LOCALE_LOCK = threading.RLock()

#: what joins a folder (or zip) and a SeriesInstanceUID in the path of one of its series
SERIES_MARK = "#series="
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DICOM_MAGIC_OFFSET = 128


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


def has_dicom_magic(path: Path) -> bool:
    """True for a file with the ``DICM`` preamble of a DICOM file."""
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
            and (child.suffix.lower() == ".dcm" or has_dicom_magic(child))
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
    """Extract the files of ``archive`` flat into ``target`` (no paths from the archive are used);
    ``{file: member}``."""
    names: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir() and not _skipped_member(m.filename)]
            need, free = sum(m.file_size for m in members), shutil.disk_usage(target).free
            if need > free:
                raise InputError(
                    f"{archive}: extracting needs {need / 2**30:.1f} GiB, "
                    f"{free / 2**30:.1f} GiB free in {target.parent}"
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
    exit); ``uid`` is the series of a series path, else ``None``. Errors inside name the zip, not the temporary
    folder."""
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
