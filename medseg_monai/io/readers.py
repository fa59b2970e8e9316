"""MONAI image readers for every supported format, and the loaders built on them (an image's grid read from its
header alone: :mod:`medseg_monai.io.geometry`).

Array conventions (the same for loading and for :func:`~medseg_monai.io.writers.write_mask`):

- raster images (png, tif, jpg, bmp): ``(H, W)`` or ``(H, W, C)``, as NumPy/PIL see them (no transpose);
- volumes (NIfTI, MHA/MHD, NRRD/NHDR, DICOM series): ``(X, Y, Z)`` (ITK index order) or ``(X, Y, Z, C)``,
  with ``meta["affine"]`` mapping ``(i, j, k)`` to RAS millimetres, as MONAI's ``NibabelReader`` gives.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, PathLike
from monai.data import MetaTensor
from monai.data.image_reader import ImageReader, NibabelReader, PILReader
from monai.data.utils import orientation_ras_lps
from monai.transforms import LoadImage, LoadImaged
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medseg_monai.compat import copy_compatible_dict, stack_images
from medseg_monai.config import InputChecks
from medseg_monai.errors import InputError
from medseg_monai.io.dicom import is_dicom_input
from medseg_monai.io.formats import FORMAT_SUFFIXES, RASTER_FORMATS, detect_format
from medseg_monai.io.geometry import lps_affine
from medseg_monai.io.opening import named_errors, read_sitk, require_exists
from medseg_monai.io.seg_files import SegReader, is_seg_file
from medseg_monai.io.validation import check_header, check_image, check_same_grid

__all__ = [
    "FormatDispatchReader",
    "RasterReader",
    "SimpleITKReader",
    "image_loader",
    "load_image",
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
            require_exists(name)
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
        images = [read_sitk(name) for name in _names(data)]
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
            require_exists(name)
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
            with named_errors(name):
                check_header(name, fmt, self.checks)
        with named_errors(names[0]):
            if len(names) == 1:
                return reader, reader.read(data, **kwargs), names
        objects = []
        for name in names:  # several files: one channel each, read one by one so errors name the file
            with named_errors(name):
                objects.append(reader.read(name, **kwargs))
        return reader, objects, names

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        reader, obj, names = img
        if len(names) > 1:
            return self._stacked_channels(reader, obj, names)
        with named_errors(names[0]):  # nibabel reads the voxels lazily, here
            array, meta = reader.get_data(obj)
        if not array.flags.c_contiguous and array.dtype in _TORCH_COPIES and min(array.strides) > 0:
            array = (
                torch.from_numpy(array).contiguous().numpy()
            )  # MONAI makes it C-ordered; torch's copy is ~2x numpy's
        return check_image(array, meta, names[0], self.checks, role=self.role, channels=self.channels), meta

    def _stacked_channels(
        self, reader: ImageReader, objects: Sequence[Any], names: Sequence[str]
    ) -> tuple[np.ndarray, dict]:
        """One file per channel: each checked on its own, all on channel 0's voxel grid, stacked as
        ``(C, *spatial)``."""
        arrays: list[np.ndarray] = []
        meta: dict = {}
        for index, (obj, name) in enumerate(zip(objects, names)):
            with named_errors(name):
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
