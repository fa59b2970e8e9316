"""Checks of every image where it enters the package, in one place.

:class:`~medseg_monai.io.readers.FormatDispatchReader` calls :func:`check_header` before the voxels are
read (memory guard, a header that claims more data than the file holds) and :func:`check_image` on the
array it read (complex or non-numeric voxels, non-finite voxels, 4D images, spacing and direction,
constant images). Problems raise :class:`~medseg_monai.errors.InputError` naming the file; odd but usable
images (NaN voxels, a constant image) are logged as warnings naming the file and what was done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import MetaKeys

from medseg_monai.config import InputChecks
from medseg_monai.errors import InputError

__all__ = [
    "GRID_TOLERANCE",
    "DIRECTION_TOLERANCE",
    "check_geometry",
    "check_header",
    "check_nifti_pixdim",
    "check_image",
    "check_same_grid",
    "recorded_warnings",
    "replace_non_finite",
]

logger = logging.getLogger(__name__)
_recorder = threading.local()


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Collect the warnings the checks give in this thread (e.g. for one case's manifest record), as they are logged."""
    previous = getattr(_recorder, "messages", None)
    messages: list[str] = []
    _recorder.messages = messages
    try:
        yield messages
    finally:
        _recorder.messages = previous


def _warn(message: str) -> None:
    logger.warning("%s", message)
    messages = getattr(_recorder, "messages", None)
    if messages is not None:
        messages.append(message)


#: largest deviation of a direction matrix from orthonormal (``|D^T D - I|``) that is accepted
DIRECTION_TOLERANCE = 1e-3


def check_header(name: str, fmt: str, checks: InputChecks) -> None:
    """Refuse ``name`` before reading its voxels when its header claims more than ``checks.max_voxels`` voxels
    or, for an uncompressed NIfTI file, more bytes than the file holds."""
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        raise InputError(f"{name}: empty file (0 bytes)")
    if fmt == "nifti":
        check_nifti_pixdim(name)
    if fmt == "mha" and os.path.isfile(name):
        _check_metaimage(name)
    shape, itemsize, offset = _header_facts(name, fmt)
    if shape is None:
        return
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > checks.max_voxels:
        raise InputError(
            f"{name}: header claims {'x'.join(map(str, shape))} = {voxels:,} voxels, more than max_voxels "
            f"{checks.max_voxels:,} (raise --max-voxels if this is intended)"
        )
    if fmt == "nifti" and name.lower().endswith(".nii") and itemsize:
        need, have = offset + voxels * itemsize, os.path.getsize(name)
        if have < need:
            raise InputError(
                f"{name}: truncated: the header claims {'x'.join(map(str, shape))} voxels "
                f"({need:,} bytes with the header) but the file holds {have:,} bytes"
            )


def check_nifti_pixdim(name: str) -> None:
    """A NIfTI-1 voxel size of zero or non-finite is refused (nibabel would quietly read it as 1 mm)."""
    import nibabel as nib

    with nib.openers.ImageOpener(name) as handle:
        raw = handle.read(348)
    if len(raw) < 348:
        return  # too short for a header: the read reports it
    for order in ("<", ">"):
        if int(np.frombuffer(raw[:4], dtype=f"{order}i4")[0]) == 348:
            dims = np.frombuffer(raw[40:56], dtype=f"{order}i2")
            pixdim = np.frombuffer(raw[76:108], dtype=f"{order}f4")
            count = int(np.clip(dims[0], 1, 3))
            spatial = pixdim[1 : 1 + count][dims[1 : 1 + count] > 1]  # a singleton axis may carry no size
            if not np.all(np.isfinite(spatial)) or np.any(spatial == 0):
                raise InputError(f"{name}: voxel spacing (pixdim) {spatial.tolist()} must be positive and finite")
            return


_MET_BYTES = {
    "MET_UCHAR": 1,
    "MET_CHAR": 1,
    "MET_USHORT": 2,
    "MET_SHORT": 2,
    "MET_UINT": 4,
    "MET_INT": 4,
    "MET_FLOAT": 4,
    "MET_ULONG_LONG": 8,
    "MET_LONG_LONG": 8,
    "MET_DOUBLE": 8,
    "MET_ULONG": 4,
    "MET_LONG": 4,
}


def _check_metaimage(name: str) -> None:
    """A MetaImage (``.mha``/``.mhd``) header that is not one, names a data file that is missing, or claims more voxel
    bytes than its data holds is refused here, with the reason (ITK's own message says "No such file or directory")."""
    fields: dict[str, str] = {}
    consumed = 0
    with open(name, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            consumed += len(raw)
            key, sep, value = raw.decode("latin-1").partition("=")
            if not sep:
                if number == 1:
                    raise InputError(f"{name}: not a MetaImage header (its first line is not 'Key = Value')")
                continue  # a blank or free-text line
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile" or consumed > (1 << 20):
                break
    if "ElementDataFile" not in fields:
        raise InputError(f"{name}: not a MetaImage header (no ElementDataFile line)")
    if "DimSize" not in fields or "ElementType" not in fields:
        raise InputError(f"{name}: MetaImage header without DimSize or ElementType")
    data_file = fields["ElementDataFile"]
    if data_file.upper() == "LOCAL":
        target, available = name, os.path.getsize(name) - consumed
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        return  # several data files: ITK reports what is missing
    else:
        target = os.path.join(os.path.dirname(name), data_file)
        if not os.path.isfile(target):
            raise InputError(
                f"{name}: the data file {data_file!r} that the header names is missing (expected {target})"
            )
        available = os.path.getsize(target) - int(fields.get("HeaderSize", "0") or 0)
    if fields.get("CompressedData", "False").lower() == "true" or fields["ElementType"] not in _MET_BYTES:
        return
    try:
        voxels = int(np.prod([int(v) for v in fields["DimSize"].split()], dtype=np.int64))
        components = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise InputError(f"{name}: MetaImage DimSize {fields['DimSize']!r} is not a list of integers") from None
    need = voxels * components * _MET_BYTES[fields["ElementType"]]
    if available < need:
        raise InputError(
            f"{name}: truncated: the header claims {fields['DimSize'].replace(' ', 'x')} voxels ({need:,} bytes) "
            f"but {os.path.basename(target)} holds {max(available, 0):,} bytes of voxel data"
        )


def _header_facts(name: str, fmt: str) -> tuple[tuple[int, ...] | None, int, int]:
    """``(shape including channels, bytes per voxel, data offset)`` from the header alone; ``None`` where unknown."""
    if fmt == "nifti":
        import nibabel as nib

        img = nib.load(name)
        return tuple(int(s) for s in img.shape), int(img.get_data_dtype().itemsize), int(img.dataobj.offset)
    if fmt in ("mha", "nrrd"):
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return None, 0, 0  # the read that follows reports it
        return (*reader.GetSize(), reader.GetNumberOfComponents()), 0, 0
    if fmt in ("png", "tif", "jpg", "bmp"):
        from PIL import Image

        try:
            with Image.open(name) as img:
                return (img.height, img.width, len(img.getbands())), 0, 0
        except Exception:  # PIL's own errors: the read that follows reports them
            return None, 0, 0
    return None, 0, 0  # DICOM series: checked slice by slice by the reader


def check_image(
    array: np.ndarray,
    meta: dict[str, Any],
    name: str,
    checks: InputChecks,
    *,
    role: str = "image",
    channels: int | None = None,
) -> np.ndarray:
    """``array`` checked (and, for non-finite voxels or a chosen 4D volume, replaced) as read from ``name``.

    Args:
        array: the reader's array, ``(H, W[, C])`` or ``(X, Y, Z[, C])``.
        meta: the reader's metadata (``affine``, ``spatial_shape``, ``spacing`` where the format has it);
            updated when a 4D image's volume is chosen.
        role: ``image`` or ``mask``; a mask's non-finite voxels are an error and a constant mask is normal.
        channels: the input channels a model expects; a volume with another number of channels (a 4D image)
            is refused unless ``checks.volume_index`` picks one.

    Raises:
        InputError: complex or non-numeric voxels, no finite voxel, non-finite voxels with ``checks.strict``
            (or in a mask), a 4D image the model cannot take, bad spacing or direction.
    """
    if np.iscomplexobj(array):
        raise InputError(
            f"{name}: complex-valued voxels ({array.dtype}); save the magnitude or the real part as a real image"
        )
    if array.dtype.kind not in "biuf":
        raise InputError(f"{name}: voxels of type {array.dtype} are not numbers")
    spatial = len(np.asarray(meta.get(MetaKeys.SPATIAL_SHAPE, array.shape)).ravel())
    check_geometry(meta, name, spatial)
    if array.ndim > spatial and spatial == 3:
        array = _select_volume(array, name, checks, channels)
        if array.ndim == spatial:  # one volume chosen: no channel axis left
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan")
    if not array.size:
        return array
    low, high = array.min(), array.max()  # NaN or inf anywhere shows in these: one pass each for the common case
    if array.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        array = replace_non_finite(array, name, checks, role)
        low, high = array.min(), array.max()
    if role == "image" and low == high:
        _warn(f"{name}: the image is constant (every voxel {low}); its mask will most likely be empty")
    return array


def _select_volume(array: np.ndarray, name: str, checks: InputChecks, channels: int | None) -> np.ndarray:
    count = int(array.shape[-1])
    if checks.volume_index is not None:
        if checks.volume_index >= count:
            raise InputError(
                f"{name}: volume_index {checks.volume_index} is out of range for {count} volumes (0..{count - 1})"
            )
        _warn(f"{name}: {count} volumes, segmenting volume {checks.volume_index} (volume_index)")
        return np.ascontiguousarray(array[..., checks.volume_index])
    if channels is not None and count != channels:
        raise InputError(
            f"{name}: a 4D image of {count} volumes, but the model takes {channels} channel(s); "
            f"choose one with --volume-index (0..{count - 1})"
        )
    return array


def replace_non_finite(array: np.ndarray, name: str, checks: InputChecks, role: str = "image") -> np.ndarray:
    """``array`` with NaN as ``checks.nan_value`` (default its smallest finite value) and +/-inf as its largest /
    smallest finite value, with a warning naming the file and the counts; refused under ``checks.strict``."""
    finite = np.isfinite(array)
    if finite.all():
        return array
    is_nan = np.isnan(array)
    nan = int(is_nan.sum())
    inf = int((~finite).sum()) - nan
    what = ", ".join(part for part in (f"{nan:,} NaN" if nan else "", f"{inf:,} infinite" if inf else "") if part)
    if not finite.any():
        raise InputError(f"{name}: no finite voxel ({what})")
    if checks.strict or role == "mask":
        hint = " (without --strict they would be replaced, with a warning)" if role == "image" else ""
        raise InputError(f"{name}: {what} voxel(s){hint}")
    low = float(array.min(where=finite, initial=np.inf))
    high = float(array.max(where=finite, initial=-np.inf))
    fill = low if checks.nan_value is None else float(checks.nan_value)
    out = np.nan_to_num(array, copy=True, nan=fill, posinf=high, neginf=low)
    how = ", ".join(
        part
        for part in (f"NaN by {fill:g}" if nan else "", f"inf by the finite range [{low:g}, {high:g}]" if inf else "")
        if part
    )
    _warn(f"{name}: {what} voxel(s) of {array.size:,} replaced ({how}); --strict refuses such images")
    return out


def check_geometry(meta: dict[str, Any], name: str, spatial: int) -> None:
    """Refuse zero, negative or non-finite spacing and singular or non-orthonormal directions."""
    affine = meta.get(MetaKeys.AFFINE)
    if affine is None:
        return
    linear = np.asarray(affine, dtype=float)[:spatial, :spatial]
    spacing = np.linalg.norm(linear, axis=0)
    declared = np.asarray(meta.get("spacing", spacing), dtype=float).ravel()[:spatial]
    for values in (spacing, declared):
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise InputError(f"{name}: voxel spacing {np.round(declared, 6).tolist()} must be positive and finite")
    if not np.all(np.isfinite(np.asarray(affine, dtype=float))):
        raise InputError(f"{name}: the image's orientation/origin holds non-finite values")
    direction = linear / spacing
    if abs(np.linalg.det(direction)) < 1e-6:
        raise InputError(f"{name}: the direction matrix is singular (axes {np.round(direction, 4).tolist()})")
    deviation = float(np.abs(direction.T @ direction - np.eye(spatial)).max())
    if deviation > DIRECTION_TOLERANCE:
        raise InputError(
            f"{name}: the direction axes are not orthonormal (deviation {deviation:.3g}: a sheared grid), "
            "which the mask formats cannot store"
        )


#: largest difference of two grids' voxel-to-world matrices that counts as the same grid (an image and its mask, two
#: channels of a case), as a fraction of the smallest voxel size
GRID_TOLERANCE = 0.01


def check_same_grid(header: dict, first: dict, name: str, index: int, first_name: str) -> None:
    """Refuse channel ``index`` (file ``name``) unless it lies on channel 0's voxel grid (shape and affine)."""
    shape = tuple(int(s) for s in np.asarray(header.get(MetaKeys.SPATIAL_SHAPE, ())).ravel())
    expected = tuple(int(s) for s in np.asarray(first.get(MetaKeys.SPATIAL_SHAPE, ())).ravel())
    if shape != expected:
        raise InputError(
            f"{name}: channel {index} is {shape} but channel 0 ({Path(first_name).name}) is {expected}; "
            "every channel of a case must share one voxel grid"
        )
    a = np.asarray(header.get(MetaKeys.AFFINE, np.eye(4)), dtype=float)
    b = np.asarray(first.get(MetaKeys.AFFINE, np.eye(4)), dtype=float)
    spacing = np.linalg.norm(b[:-1, :-1], axis=0)
    difference = float(np.abs(a - b).max())
    if difference > GRID_TOLERANCE * (float(spacing.min()) if spacing.size else 1.0):
        raise InputError(
            f"{name}: channel {index} lies on another voxel grid than channel 0 ({Path(first_name).name}): "
            f"voxel-to-world matrices differ by up to {difference:.3g} mm; every channel of a case must share one grid"
        )
