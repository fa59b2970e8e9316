"""Label-map writers that copy the geometry of the source image's own header.

``write_mask`` takes the mask in the readers' index order (``(H, W)`` for raster sources, ``(X, Y, Z)``
for volumes), checks it against the source's spatial shape, and writes it atomically in the source's
format (or ``output_format``) with the source's voxel grid. Writers registered with ``label_names=True`` (the DICOM
SEG writer, :mod:`medseg_monai.io.dicom_seg`) also get the label names by value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from medseg_monai.errors import InputError, OutputError
from medseg_monai.io.formats import MASK_FORMAT_FOR, MASK_SUFFIXES, check_output_format, detect_format, split_suffix
from medseg_monai.io.geometry import Geometry, read_geometry
from medseg_monai.utils import atomic_path

__all__ = [
    "MASK_WRITERS",
    "MaskWriter",
    "label_sidecar_path",
    "mask_dtype",
    "nifti_like",
    "register_writer",
    "sitk_image",
    "write_mask",
]

logger = logging.getLogger(__name__)

#: ``writer(mask, source, geometry, tmp_path)`` writes ``mask`` (already validated and cast) to ``tmp_path``; a writer
#: registered with ``label_names=True`` is also given ``label_names=`` (``{value: name}``, possibly empty)
MaskWriter = Callable[..., None]

MASK_WRITERS: dict[str, MaskWriter] = {}
_TAKES_LABEL_NAMES: set[str] = set()


class _WriteFailed(Exception):
    """A writer library's failure to write the temporary file; :func:`write_mask` names the output."""


#: suffix written for a format when the requested one would create a second data file
_SINGLE_FILE_SUFFIX = {".mhd": ".mha", ".nhdr": ".nrrd"}


def register_writer(fmt: str, *, label_names: bool = False) -> Callable[[MaskWriter], MaskWriter]:
    """Decorator registering a mask writer for format ``fmt`` in :data:`MASK_WRITERS`; with ``label_names`` it is
    called with the keyword ``label_names`` (``{value: name}``) too."""

    def decorator(func: MaskWriter) -> MaskWriter:
        MASK_WRITERS[fmt] = func
        (_TAKES_LABEL_NAMES.add if label_names else _TAKES_LABEL_NAMES.discard)(fmt)
        return func

    return decorator


def mask_dtype(mask: np.ndarray, name: str | Path = "mask") -> np.dtype:
    """``uint8`` when the labels fit, else ``uint16``; non-integer, negative or > 65535 values raise ``ValueError``."""
    if mask.dtype == bool:
        return np.dtype(np.uint8)
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise InputError(f"{name}: mask dtype {mask.dtype} is not a label map")
    if mask.size == 0:
        return np.dtype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating) and not np.all(np.isfinite(mask) & (np.mod(mask, 1) == 0)):
        raise InputError(f"{name}: mask has non-integer values; pass class labels, not probabilities")
    low, high = mask.min(), mask.max()
    if low < 0:
        raise InputError(f"{name}: mask has negative labels (min {low})")
    if high > np.iinfo(np.uint16).max:
        raise InputError(f"{name}: label {high} does not fit in uint16")
    return np.dtype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)


def label_sidecar_path(output: str | Path) -> Path:
    """``<mask name without suffix>.labels.json`` beside the mask."""
    output = Path(output)
    return output.with_name(split_suffix(output)[0] + ".labels.json")


def _output_path(output: Path, fmt: str) -> Path:
    suffixes = MASK_SUFFIXES.get(fmt, ())
    stem, suffix = split_suffix(output)
    if suffix.lower() not in suffixes:
        raise InputError(
            f"{output}: suffix {suffix or '(none)'!r} does not match output format {fmt!r} ({', '.join(suffixes)})"
        )
    single = _SINGLE_FILE_SUFFIX.get(suffix.lower())
    if single:
        logger.info("%s: writing %s instead, one file with its data", output, single)
        return output.with_name(stem + single)
    return output


def write_mask(
    mask: np.ndarray,
    source: str | Path,
    output: str | Path,
    *,
    output_format: str | None = None,
    label_names: Sequence[str] | Mapping[int, str] | None = None,
) -> Path:
    """Write an integer label map with the geometry of ``source`` (the image it was predicted from).

    Args:
        mask: labels in the readers' index order, exactly the source's spatial shape.
        source: the image file or DICOM input (folder, zip, one series); its header is re-read for the geometry.
        output: mask path; its suffix must belong to the output format (``.mhd``/``.nhdr`` become
            ``.mha``/``.nrrd`` so the mask is one file).
        output_format: a key of :data:`MASK_WRITERS`; default ``MASK_FORMAT_FOR[format of source]``.
        label_names: names by label value (a mapping) or by index (a sequence); written to
            ``<name>.labels.json`` beside the mask.

    Returns:
        The path written.

    Raises:
        ValueError: wrong shape, non-integer/negative/too large labels, no writer for the format, a DICOM SEG
            of a source that is no DICOM series, a suffix not matching the format, or ``output`` being the source
            itself.
        OutputError: the mask cannot be written (a read-only folder, a full disk), naming ``output``;
            no temporary file is left.
    """
    source, output = Path(source), Path(output)
    fmt = output_format or MASK_FORMAT_FOR[detect_format(source)]
    writer = MASK_WRITERS.get(fmt)
    if writer is None:
        raise InputError(f"{output}: no mask writer for format {fmt!r}; available: {sorted(MASK_WRITERS)}")
    check_output_format(source, fmt)
    output = _output_path(output, fmt)
    if output.resolve() == source.resolve():
        raise InputError(f"{output}: refusing to overwrite the source image with its mask")
    mask = np.asarray(mask)
    geometry = read_geometry(source)
    if tuple(mask.shape) != tuple(geometry.shape):
        raise InputError(
            f"{output}: mask shape {tuple(mask.shape)} does not match "
            f"the spatial shape {tuple(geometry.shape)} of {source}"
        )
    mask = mask.astype(mask_dtype(mask, output), copy=False)
    names = dict(label_names.items() if isinstance(label_names, Mapping) else enumerate(label_names or ()))
    names = {int(value): str(name) for value, name in names.items()}
    extra = {"label_names": names} if fmt in _TAKES_LABEL_NAMES else {}
    with atomic_path(output) as tmp:
        try:
            writer(mask, source, geometry, tmp, **extra)
        except _WriteFailed as err:
            raise OutputError(f"{output}: cannot write the mask ({err})") from err
    if label_names is not None:
        sidecar = {"labels": {str(value): name for value, name in names.items()}}
        with atomic_path(label_sidecar_path(output)) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    logger.debug("wrote %s (%s, %s, labels up to %d)", output, fmt, mask.dtype, int(mask.max()) if mask.size else 0)
    return output


# ---------------------------------------------------------------------------------------------- writers
def _label_header(header, mask: np.ndarray) -> None:
    header.set_data_dtype(mask.dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_intent("label")
    header["cal_min"] = 0
    header["cal_max"] = int(mask.max()) if mask.size else 0


def nifti_like(data: np.ndarray, source: Path, geometry: Geometry):
    """A NIfTI image of ``data`` on ``source``'s grid: a NIfTI source's header, qform and sform (matrices and codes),
    else its RAS affine with codes 1 and mm units. ``data`` may carry trailing non-spatial axes (4D maps)."""
    import nibabel as nib

    data = np.asfortranarray(
        data
    )  # NIfTI's layout: nibabel writes other layouts one strided slice at a time, ~10x slower
    if geometry.format == "nifti":
        src = nib.load(str(source))
        header = src.header.copy()
        header.set_data_shape(data.shape)
        img = type(src)(data, None, header=header)
        img.set_qform(src.get_qform(), int(src.header["qform_code"]))
        img.set_sform(src.get_sform(), int(src.header["sform_code"]))
    else:
        affine = np.asarray(geometry.affine_ras, dtype=float)
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, 1)
        img.set_sform(affine, 1)
        img.header.set_xyzt_units("mm")
    return img


@register_writer("nifti")
def _write_nifti(mask: np.ndarray, source: Path, geometry: Geometry, tmp: Path) -> None:
    """NIfTI mask on the source's grid (:func:`nifti_like`), marked as a label map."""
    img = nifti_like(mask, source, geometry)
    _label_header(img.header, mask)
    img.to_filename(str(tmp))


def sitk_image(array: np.ndarray, geometry: Geometry, vector: bool = False):
    """A SimpleITK image of ``array`` (``(x, y, z)``; with ``vector``, ``(K, x, y, z)`` as K components per voxel)
    with ``geometry``'s spacing, origin and direction."""
    import SimpleITK as sitk

    # SimpleITK's arrays run (z, y, x[, K])
    data = array.transpose(*range(array.ndim - 1, 0, -1), 0) if vector else array.T
    img = sitk.GetImageFromArray(np.ascontiguousarray(data), isVector=vector)
    img.SetSpacing(geometry.spacing)
    img.SetOrigin(geometry.origin)
    img.SetDirection(geometry.direction_flat())
    return img


@register_writer("mha")
@register_writer("nrrd")
def _write_itk(mask: np.ndarray, source: Path, geometry: Geometry, tmp: Path) -> None:
    """MHA or NRRD mask (one compressed file) with the source's origin, spacing and direction."""
    import SimpleITK as sitk

    image = sitk_image(mask, geometry)
    try:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    except RuntimeError as err:  # SimpleITK reports a failed write (a full disk, an I/O error) as RuntimeError
        raise _WriteFailed(_last_line(err)) from err


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _raster_image(mask: np.ndarray, source: Path):
    from PIL import Image

    if mask.ndim != 2:
        raise InputError(f"{source}: a {mask.ndim}D mask cannot be written as a raster image")
    return Image.fromarray(np.ascontiguousarray(mask))  # mode L for uint8, I;16 for uint16


@register_writer("png")
def _write_png(mask: np.ndarray, source: Path, geometry: Geometry, tmp: Path) -> None:
    """PNG mask, ``(H, W)`` as stored."""
    _raster_image(mask, source).save(tmp, format="PNG")


@register_writer("tif")
def _write_tif(mask: np.ndarray, source: Path, geometry: Geometry, tmp: Path) -> None:
    """TIFF mask (LZW, lossless), ``(H, W)`` as stored."""
    _raster_image(mask, source).save(tmp, format="TIFF", compression="tiff_lzw")
