"""Opening image inputs: that a path exists, SimpleITK's read of a file or DICOM series (whole, or its header
only), and a reader's errors re-raised as :class:`~medseg_monai.errors.InputError` naming the file."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg_monai.errors import InputError
from medseg_monai.io.dicom import dicom_folder, is_dicom_input, preserved_locale, split_series_path
from medseg_monai.io.dicom_series import dicom_series_files

__all__ = ["named_errors", "read_sitk", "require_exists"]


def require_exists(path: str) -> None:
    """``FileNotFoundError`` naming ``path`` unless it exists (one series of a DICOM folder: the folder)."""
    if not split_series_path(path)[0].exists():
        raise FileNotFoundError(f"{path}: no such file or folder")


@contextlib.contextmanager
def named_errors(name: str) -> Iterator[None]:
    """Re-raise a reader's error as ``InputError("<name>: cannot read image (...)")`` unless it names the file."""
    try:
        yield
    except (FileNotFoundError, ValueError) as err:
        if str(err).startswith(name):
            raise
        raise InputError(f"{name}: cannot read image ({err})") from err
    except Exception as err:  # nibabel, gzip, zlib and SimpleITK raise their own types for corrupt files
        raise InputError(f"{name}: cannot read image ({err})") from err


def read_sitk(name: str, information_only: bool = False) -> Any:
    """A SimpleITK image (or a reader holding only the header) of a file or DICOM series folder."""
    import SimpleITK as sitk

    require_exists(name)
    try:
        with preserved_locale():
            return _sitk_read(sitk, name, information_only)
    except RuntimeError as err:
        raise InputError(f"{name}: cannot read image ({_itk_reason(err, name)})") from err


#: SimpleITK's ImageIO per suffix: the file is read as its suffix says, not as whatever its bytes resemble
_ITK_IMAGE_IO = {".mha": "MetaImageIO", ".mhd": "MetaImageIO", ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO"}


def _sitk_read(sitk: Any, name: str, information_only: bool) -> Any:
    if is_dicom_input(name):  # a folder, a zip (extracted while it is read) or one series of either
        with dicom_folder(name) as (folder, uid):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(dicom_series_files(folder, uid))
            return reader.Execute()
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    image_io = _ITK_IMAGE_IO.get(Path(name).suffix.lower())
    if image_io:
        reader.SetImageIO(image_io)
    if information_only:
        reader.ReadImageInformation()
        return reader
    return reader.Execute()


def _itk_reason(err: RuntimeError, name: str) -> str:
    """The informative part of an ITK exception: its description lines, without the C++ location and the file's
    own name."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("sitk::ERROR", "/")) and ".cxx:" not in line and ".h:" not in line
    ]
    text = " ".join(useful or lines[-1:]) or type(err).__name__
    text = re.sub(r"(ITK ERROR|itk::ERROR): \w+\(0x[0-9a-fA-F]+\): ", "", text)
    text = re.sub(r"Exception thrown in SimpleITK \w+: \S+:\d+:\s*", "", text)
    if "[nrrd]" in text:  # teem's chain of callers: the last two say what went wrong
        text = " ".join(part.strip() for part in text.split("[nrrd]")[-2:])
    return text.replace(f" {name} ", " ").replace(name, "the file")
