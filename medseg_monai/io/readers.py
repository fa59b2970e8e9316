"""MONAI image readers for every supported format, and header-only geometry.

Array conventions (the same for loading and for :func:`~medseg_monai.io.writers.write_mask`):

- raster images (png, tif, jpg, bmp): ``(H, W)`` or ``(H, W, C)``, as NumPy/PIL see them (no transpose);
- volumes (NIfTI, MHA/MHD, NRRD/NHDR, DICOM series): ``(X, Y, Z)`` (ITK index order) or ``(X, Y, Z, C)``,
  with ``meta["affine"]`` mapping ``(i, j, k)`` to RAS millimetres, as MONAI's ``NibabelReader`` gives.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, PathLike
from monai.data import MetaTensor
from monai.data.image_reader import ImageReader, NibabelReader, PILReader
from monai.data.utils import correct_nifti_header_if_necessary, orientation_ras_lps
from monai.transforms import LoadImage, LoadImaged
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medseg_monai.compat import copy_compatible_dict, stack_images
from medseg_monai.config import InputChecks
from medseg_monai.errors import InputError
from medseg_monai.io.dicom import dicom_folder, dicom_series_files, is_dicom_input, preserved_locale, split_series_path
from medseg_monai.io.formats import FORMAT_SUFFIXES, RASTER_FORMATS, detect_format
from medseg_monai.io.seg_files import SegReader, is_seg_file, seg_grid
from medseg_monai.io.validation import check_header, check_image, check_same_grid

__all__ = [
    "FormatDispatchReader",
    "Geometry",
    "RasterReader",
    "SimpleITKReader",
    "image_loader",
    "load_image",
    "read_geometry",
    "reader_for_format",
]

logger = logging.getLogger(__name__)
_TORCH_COPIES = frozenset(np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "int64", "float32", "float64"))

# LoadImage instantiates every MONAI reader whose package is installed; with pydicom present its GPU DICOM
# reader warns on every loader built that the optional nvImageCodec plugin is missing. We never use it.
warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin", category=UserWarning)
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)

RASTER_SUFFIXES: tuple[str, ...] = tuple(s for f in sorted(RASTER_FORMATS) for s in FORMAT_SUFFIXES[f])
SITK_SUFFIXES: tuple[str, ...] = FORMAT_SUFFIXES["mha"] + FORMAT_SUFFIXES["nrrd"]


def _names(filename: Sequence[PathLike] | PathLike) -> tuple[str, ...]:
    return tuple(f"{name}" for name in ensure_tuple(filename))


def _has_suffix(filename: Sequence[PathLike] | PathLike, suffixes: Sequence[str]) -> bool:
    names = _names(filename)
    return bool(names) and all(name.lower().endswith(tuple(suffixes)) for name in names)


def _as_list(img: Any) -> list:  # not ensure_tuple: it would iterate a SimpleITK image's pixels
    return list(img) if isinstance(img, (list, tuple)) else [img]


def _require(path: str) -> None:
    if not split_series_path(path)[0].exists():  # one series of a DICOM folder: the folder
        raise FileNotFoundError(f"{path}: no such file or folder")


def lps_affine(direction: Sequence[float], spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """Homogeneous ``(d+1, d+1)`` index-to-LPS affine of an ITK geometry (``direction`` row-major, flat)."""
    dim = len(spacing)
    affine = np.eye(dim + 1)
    affine[:dim, :dim] = np.asarray(direction, dtype=float).reshape(dim, dim) @ np.diag(
        np.asarray(spacing, dtype=float)
    )
    affine[:dim, dim] = np.asarray(origin, dtype=float)
    return affine


def _to_4x4(affine: np.ndarray) -> np.ndarray:
    """Embed a 2D ``3x3`` affine into ``4x4`` (the third axis unit, at 0)."""
    if affine.shape == (4, 4):
        return affine
    dim = affine.shape[0] - 1
    out = np.eye(4)
    out[:dim, :dim] = affine[:dim, :dim]
    out[:dim, 3] = affine[:dim, dim]
    return out


# ---------------------------------------------------------------------------------------------- raster
class RasterReader(PILReader):
    """2D raster images (png, tif/tiff, jpg/jpeg, bmp) in NumPy's ``(H, W[, C])`` order.

    Unlike ``PILReader`` (``reverse_indexing=True`` gives ``(W, H)``) the array is not transposed, and
    ``spatial_shape`` is ``(H, W)``. Alpha is dropped, palettes become gray or RGB, 16-bit gray keeps its values.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(converter=None, reverse_indexing=False, **kwargs)

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        return _has_suffix(filename, RASTER_SUFFIXES)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Any:
        from PIL import Image, UnidentifiedImageError

        images = []
        kwargs_ = {**self.kwargs, **kwargs}
        for name in _names(data):
            _require(name)
            try:
                img = Image.open(name, **kwargs_)
                img.load()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                raise InputError(f"{name}: cannot read image ({err})") from err
            if getattr(img, "n_frames", 1) > 1:
                logger.warning("%s: %d frames, only the first is read", name, img.n_frames)
            images.append(img)
        return images if len(images) > 1 else images[0]

    @staticmethod
    def to_array(img: Any) -> np.ndarray:
        """Pixel array of a PIL image, ``(H, W)`` or ``(H, W, 3)``, following the mode rules above."""
        mode = img.mode
        if mode in ("1", "L"):
            array = np.asarray(img.convert("L"))
        elif mode in ("P", "PA"):
            rgb = np.asarray(img.convert("RGB"))
            gray = np.all(rgb[..., :1] == rgb[..., 1:], axis=-1).all()
            array = rgb[..., 0] if gray else rgb
        elif mode in ("LA", "La"):
            array = np.asarray(img.convert("L"))
        elif mode.startswith("I;16") or mode in ("I", "F"):
            array = np.asarray(img)
            array = array.astype(array.dtype.newbyteorder("="), copy=False)
        elif mode == "RGB":
            array = np.asarray(img)
        else:  # RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV
            array = np.asarray(img.convert("RGB"))
        return np.array(array, order="C")  # writable and contiguous (PIL's buffer is read-only)

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        arrays: list[np.ndarray] = []
        meta: dict = {}
        for i in _as_list(img):
            array = self.to_array(i)
            header = {
                "format": i.format,
                "mode": i.mode,
                "width": i.width,
                "height": i.height,
                "spacing": np.ones(2),
                MetaKeys.SPATIAL_SHAPE: np.asarray((i.height, i.width)),
                MetaKeys.ORIGINAL_AFFINE: np.eye(4),
                MetaKeys.AFFINE: np.eye(4),
                MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if array.ndim == 2 else -1,
            }
            arrays.append(array)
            copy_compatible_dict(header, meta)
        return stack_images(arrays, meta), meta


# ---------------------------------------------------------------------------------------------- SimpleITK
def _read_sitk(name: str, information_only: bool = False) -> Any:
    """A SimpleITK image (or a reader holding only the header) of a file or DICOM series folder."""
    import SimpleITK as sitk

    _require(name)
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
    """The informative part of an ITK exception: its description lines, without the C++ location and the file's own name."""
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


class SimpleITKReader(ImageReader):
    """MHA/MHD, NRRD/NHDR files and DICOM series folders through SimpleITK.

    Mirrors MONAI's ``ITKReader(affine_lps_to_ras=True)`` with ITK index order: the array is ``(X, Y, Z)``
    (``(X, Y, Z, C)`` for vector pixels) and ``affine``/``original_affine`` are the RAS index-to-world matrix.
    """

    def __init__(self, channel_dim: str | int | None = None) -> None:
        super().__init__()
        self.channel_dim = float("nan") if channel_dim == "no_channel" else channel_dim

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = _names(filename)
        return bool(names) and all(name.lower().endswith(SITK_SUFFIXES) or is_dicom_input(name) for name in names)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Any:
        images = [_read_sitk(name) for name in _names(data)]
        return images if len(images) > 1 else images[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        import SimpleITK as sitk

        arrays: list[np.ndarray] = []
        meta: dict = {}
        for i in _as_list(img):
            array = sitk.GetArrayViewFromImage(i)  # (z, y, x[, c])
            dim = i.GetDimension()
            array = array.T if i.GetNumberOfComponentsPerPixel() == 1 else np.moveaxis(array.T, 0, -1)
            array = np.array(array)  # own the memory: the view dies with the image
            spatial = max(min(dim, 3), 1)
            direction = np.asarray(i.GetDirection()).reshape(dim, dim)[:spatial, :spatial]
            lps = lps_affine(direction.ravel(), i.GetSpacing()[:spatial], i.GetOrigin()[:spatial])
            affine = orientation_ras_lps(lps)
            header = {
                "spacing": np.asarray(i.GetSpacing()),
                MetaKeys.ORIGINAL_AFFINE: affine,
                MetaKeys.AFFINE: affine.copy(),
                MetaKeys.SPACE: SpaceKeys.RAS,
                MetaKeys.SPATIAL_SHAPE: np.asarray(i.GetSize()[:spatial]),
            }
            if self.channel_dim is None:
                header[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if array.ndim == spatial else -1
            else:
                header[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
            arrays.append(array)
            copy_compatible_dict(header, meta)
        return stack_images(arrays, meta), meta


# ---------------------------------------------------------------------------------------------- dispatch
def reader_for_format(fmt: str) -> type[ImageReader]:
    """Reader class for a format name from :func:`~medseg_monai.io.formats.detect_format`."""
    if fmt in RASTER_FORMATS:
        return RasterReader
    if fmt in ("mha", "nrrd", "dicom"):
        return SimpleITKReader
    if fmt == "nifti":
        return NibabelReader
    if fmt == "seg":  # a DICOM SEG mask, read back as a label map
        return SegReader
    raise InputError(f"no reader for format {fmt!r}")


class FormatDispatchReader(ImageReader):
    """Routes each path to its format's reader: ``RasterReader``, MONAI ``NibabelReader`` or ``SimpleITKReader``,
    and checks what it reads (:mod:`medseg_monai.io.validation`).

    It accepts every path in ``verify_suffix``, so that a missing file or an unsupported suffix raises a
    clear error here instead of falling through to MONAI's default readers (which, for a PNG, would
    transpose it). Read errors are re-raised as ``InputError("<path>: cannot read image (...)")``.

    Args:
        checks: how odd images are handled (``None``: :class:`~medseg_monai.config.InputChecks` defaults).
        role: ``image`` or ``mask`` (a mask's non-finite voxels are an error, a constant mask is normal).
        channels: the input channels a model expects, for refusing 4D volumes it cannot take.
    """

    def __init__(self, checks: InputChecks | None = None, role: str = "image", channels: int | None = None) -> None:
        super().__init__()
        self.checks = checks or InputChecks()
        self.role, self.channels = role, channels
        self._readers: dict[type, ImageReader] = {}

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        return True

    def reader(self, filename: Sequence[PathLike] | PathLike) -> tuple[ImageReader, str]:
        names = _names(filename)
        for name in names:
            _require(name)
        formats = {"seg" if self.role == "mask" and is_seg_file(name) else detect_format(name) for name in names}
        if len(formats) != 1:
            raise InputError(f"{names[0]}: files stacked as channels must share one format, got {sorted(formats)}")
        fmt = formats.pop()
        cls = reader_for_format(fmt)
        if cls not in self._readers:
            self._readers[cls] = cls()
        return self._readers[cls], fmt

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Any:
        (reader, fmt), names = self.reader(data), _names(data)
        for name in names:
            with _named_errors(name):
                check_header(name, fmt, self.checks)
        with _named_errors(names[0]):
            if len(names) == 1:
                return reader, reader.read(data, **kwargs), names
        objects = []
        for name in names:  # several files: one channel each, read one by one so errors name the file
            with _named_errors(name):
                objects.append(reader.read(name, **kwargs))
        return reader, objects, names

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        reader, obj, names = img
        if len(names) > 1:
            return self._stacked_channels(reader, obj, names)
        with _named_errors(names[0]):  # nibabel reads the voxels lazily, here
            array, meta = reader.get_data(obj)
        if not array.flags.c_contiguous and array.dtype in _TORCH_COPIES and min(array.strides) > 0:
            array = (
                torch.from_numpy(array).contiguous().numpy()
            )  # MONAI makes it C-ordered; torch's copy is ~2x numpy's
        return check_image(array, meta, names[0], self.checks, role=self.role, channels=self.channels), meta

    def _stacked_channels(
        self, reader: ImageReader, objects: Sequence[Any], names: Sequence[str]
    ) -> tuple[np.ndarray, dict]:
        """One file per channel: each checked on its own, all on channel 0's voxel grid, stacked as ``(C, *spatial)``."""
        arrays: list[np.ndarray] = []
        meta: dict = {}
        for index, (obj, name) in enumerate(zip(objects, names)):
            with _named_errors(name):
                array, header = reader.get_data(obj)
            array = check_image(array, header, name, self.checks, role=self.role, channels=1)
            spatial = len(np.asarray(header.get(MetaKeys.SPATIAL_SHAPE, array.shape)).ravel())
            if array.ndim > spatial:
                raise InputError(
                    f"{name}: channel {index} holds {array.shape[-1]} channels itself; give one image per channel file"
                )
            if index == 0:
                meta = header
            else:
                check_same_grid(header, meta, name, index, names[0])
            arrays.append(array)
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays), meta


@contextlib.contextmanager
def _named_errors(name: str) -> Iterator[None]:
    """Re-raise a reader's error as ``InputError("<name>: cannot read image (...)")`` unless it names the file."""
    try:
        yield
    except (FileNotFoundError, ValueError) as err:
        if str(err).startswith(name):
            raise
        raise InputError(f"{name}: cannot read image ({err})") from err
    except Exception as err:  # nibabel, gzip, zlib and SimpleITK raise their own types for corrupt files
        raise InputError(f"{name}: cannot read image ({err})") from err


def image_loader(
    keys: Sequence[str] | str = ("image", "label"),
    *,
    allow_missing_keys: bool = False,
    checks: InputChecks | None = None,
    role: str = "image",
    channels: int | None = None,
) -> LoadImaged:
    """``LoadImaged`` reading every supported format in this package's array conventions (float32 arrays),
    checked by :class:`FormatDispatchReader` (``checks``, ``role``, ``channels``)."""
    loader = LoadImaged(
        keys=keys, reader=None, dtype=np.float32, image_only=True, allow_missing_keys=allow_missing_keys
    )
    loader.register(
        FormatDispatchReader(checks, role, channels)
    )  # registered last: tried first, and it accepts every path
    return loader


def load_image(
    path: str | Path, dtype: DtypeLike | None = None, *, checks: InputChecks | None = None, role: str = "image"
) -> MetaTensor:
    """One image as a ``MetaTensor`` (no channel dim added); ``dtype=None`` keeps the file's pixel type."""
    loader = LoadImage(reader=None, image_only=True, dtype=dtype)
    loader.register(FormatDispatchReader(checks, role))
    return loader(str(path))


# ---------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image, read from its header.

    ``shape`` is spatial in the readers' index order (``(X, Y, Z)``; ``(H, W)`` for raster); ``origin``
    and ``direction`` (row-major, columns are the axes) are in LPS as SimpleITK reports them;
    ``affine_ras`` is the 4x4 index-to-RAS matrix MONAI's readers put in ``meta["affine"]``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    affine_ras: tuple[tuple[float, ...], ...]
    format: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def direction_flat(self) -> tuple[float, ...]:
        return tuple(v for row in self.direction for v in row)


def _nested(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(matrix))


def geometry_from_lps(shape, spacing, origin, direction, fmt: str) -> Geometry:
    """A :class:`Geometry` from ITK-style values (``direction`` flat row-major)."""
    dim = len(spacing)
    affine = _to_4x4(orientation_ras_lps(lps_affine(direction, spacing, origin)))
    return Geometry(
        shape=tuple(int(s) for s in shape),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=_nested(np.asarray(direction, dtype=float).reshape(dim, dim)),
        affine_ras=_nested(affine),
        format=fmt,
    )


def _nifti_geometry(path: str) -> Geometry:
    import nibabel as nib

    img = correct_nifti_header_if_necessary(nib.load(path))  # what NibabelReader does
    header = img.header
    ndim = int(header["dim"][0])
    spatial = max(min(ndim, 3), 1)
    shape = tuple(int(s) for s in header["dim"][1 : 1 + spatial])
    affine = np.asarray(img.affine, dtype=float)  # RAS, 4x4 even for 2D
    linear = affine[:spatial, :spatial]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / np.where(spacing > 0, spacing, 1.0)
    flip = np.diag([-1.0, -1.0, 1.0][:spatial] if spatial > 1 else [-1.0])
    return Geometry(
        shape=shape,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in flip @ affine[:spatial, 3]),
        direction=_nested(flip @ direction),
        affine_ras=_nested(affine),
        format="nifti",
    )


def _raster_geometry(path: str, fmt: str) -> Geometry:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot read image ({err})") from err
    return Geometry((height, width), (1.0, 1.0), (0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), _nested(np.eye(4)), fmt)


def read_geometry(path: str | Path) -> Geometry:
    """Voxel grid of an image file, DICOM input or DICOM SEG mask, without loading the pixels where the format allows.

    NIfTI geometry comes from nibabel (the affine ``NibabelReader`` gives), MHA/NRRD from SimpleITK's
    ``ReadImageInformation``; a DICOM series is read whole so the slice spacing is the one
    ``ImageSeriesReader`` computes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported format or unreadable header.
    """
    path = str(path)
    _require(path)
    if is_seg_file(path):  # a DICOM SEG mask: the grid of its source series
        with _named_errors(path):
            return geometry_from_lps(*seg_grid(path), "seg")
    fmt = detect_format(path)
    if fmt in RASTER_FORMATS:
        return _raster_geometry(path, fmt)
    if fmt == "nifti":
        with _named_errors(path):
            return _nifti_geometry(path)
    info = _read_sitk(path, information_only=True)
    dim = info.GetDimension()
    n = max(min(dim, 3), 1)  # a 4D file keeps its first three axes, as the readers do
    direction = np.asarray(info.GetDirection()).reshape(dim, dim)[:n, :n].ravel()
    return geometry_from_lps(info.GetSize()[:n], info.GetSpacing()[:n], info.GetOrigin()[:n], direction, fmt)
