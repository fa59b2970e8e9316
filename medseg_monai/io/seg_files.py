"""Reading DICOM Segmentation files (``.dcm`` masks) back: their voxel grid and their label map.

The grid of a SEG written by :mod:`medseg_monai.io.dicom_seg` is its source series': every source slice is listed in
``ReferencedSeriesSequence`` in slice order, so the shape is ``(Columns, Rows, slices)`` even where empty frames were
omitted, and the origin is found from any frame's position and the slice it lies on. Label values come back from the
``.labels.json`` beside the SEG (segment label -> value), else ``label_<value>`` segment labels, else segment numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike
from monai.data.image_reader import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medseg_monai.errors import InputError

__all__ = [
    "SEGMENTATION_STORAGE",
    "SegReader",
    "is_seg_file",
    "read_seg_header",
    "referenced_instances",
    "seg_grid",
    "seg_label_map",
]

#: SOP Class UID of a DICOM Segmentation
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def is_seg_file(path: str | Path) -> bool:
    """A ``.dcm`` file: what a DICOM SEG mask is written as (whether it is one, :func:`read_seg_header` checks)."""
    return str(path).lower().endswith(".dcm") and Path(path).is_file()


def read_seg_header(path: str | Path, *, pixels: bool = False) -> Any:
    """The pydicom dataset of a DICOM SEG (without its pixel data unless ``pixels``).

    Raises:
        InputError: the file is not readable DICOM, or not a Segmentation.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as err:
        raise InputError(f"{path}: not a readable DICOM file ({err})") from err
    if ds.get("SOPClassUID") != SEGMENTATION_STORAGE or ds.get("Modality") != "SEG":
        raise InputError(
            f"{path}: not a DICOM Segmentation (Modality {ds.get('Modality')!r}, SOP class {ds.get('SOPClassUID')})"
        )
    return ds


def _float(values: Any) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=float)


def referenced_instances(ds: Any) -> list[str]:
    """SOP Instance UIDs of the source slices a SEG lists, in their order."""
    try:
        return [item.ReferencedSOPInstanceUID for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    except (AttributeError, IndexError) as err:
        raise InputError(f"{ds.filename}: the SEG references no source series") from err


def seg_grid(path: str | Path) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """``(shape, spacing, origin, direction)`` of a SEG in ITK's terms (LPS, ``direction`` flat row-major, columns the
    axes ``x`` along the rows, ``y`` down the columns, ``z`` the slice normal).

    Raises:
        InputError: not a SEG, or one without plane geometry or source references.
    """
    ds = read_seg_header(path)
    refs = referenced_instances(ds)
    try:
        shared = ds.SharedFunctionalGroupsSequence[0]
        cosines = _float(shared.PlaneOrientationSequence[0].ImageOrientationPatient)
        measures = shared.PixelMeasuresSequence[0]
        row_spacing, column_spacing = _float(measures.PixelSpacing)
        dz = float(measures.get("SpacingBetweenSlices") or measures.SliceThickness)
        frame = ds.PerFrameFunctionalGroupsSequence[0]
        position = _float(frame.PlanePositionSequence[0].ImagePositionPatient)
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        index = refs.index(source)
    except (AttributeError, IndexError, ValueError, TypeError) as err:
        raise InputError(f"{path}: the SEG has no plane geometry on its source slices ({err})") from err
    normal = np.cross(cosines[:3], cosines[3:])
    origin = position - index * dz * normal
    direction = np.column_stack([cosines[:3], cosines[3:], normal])
    shape = (int(ds.Columns), int(ds.Rows), len(refs))
    return (
        shape,
        (float(column_spacing), float(row_spacing), dz),
        tuple(float(v) for v in origin),
        tuple(direction.ravel()),
    )


def _segment_values(path: Path, ds: Any) -> dict[int, int]:
    """Label value of each segment number."""
    sidecar = path.with_name(path.name[: -len(".dcm")] + ".labels.json")
    by_name: dict[str, int] = {}
    try:
        labels = json.loads(sidecar.read_text(encoding="utf-8")).get("labels", {})
        by_name = {str(name): int(value) for value, name in labels.items()}
    except (OSError, ValueError, AttributeError):
        pass
    values = {}
    for item in ds.SegmentSequence:
        label = str(item.get("SegmentLabel", ""))
        number = int(item.SegmentNumber)
        generic = re.fullmatch(r"label_(\d+)", label)
        values[number] = by_name.get(label, int(generic[1]) if generic else number)
    return values


def seg_label_map(path: str | Path) -> np.ndarray:
    """The label map of a SEG in the readers' ``(X, Y, Z)`` order, on :func:`seg_grid` (uint8, or uint16 for values
    > 255).

    Raises:
        InputError: not a readable SEG, or overlapping segments.
    """
    import highdicom as hd

    path = Path(path)
    ds = read_seg_header(path, pixels=True)
    refs = referenced_instances(ds)
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        numbers = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=refs, combine_segments=True, relabel=False, ignore_spatial_locations=True
        )
    except (ValueError, KeyError, AttributeError, RuntimeError) as err:
        raise InputError(f"{path}: cannot read the SEG's segments ({err})") from err
    values = _segment_values(path, ds)
    table = np.zeros(max(values, default=0) + 1, dtype=np.int64)
    for number, value in values.items():
        table[number] = value
    labels = table[np.asarray(numbers, dtype=np.int64)]
    dtype = np.uint8 if labels.max(initial=0) <= 255 else np.uint16
    return np.ascontiguousarray(labels.transpose(2, 1, 0).astype(dtype))


class SegReader(ImageReader):
    """MONAI reader of a DICOM SEG as a label map ``(X, Y, Z)`` with the RAS ``affine`` of its source grid."""

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        return all(str(name).lower().endswith(".dcm") for name in ensure_tuple(filename))

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Any:
        names = [str(name) for name in ensure_tuple(data)]
        if len(names) != 1:
            raise InputError(f"{names[0]}: a DICOM SEG is read one file at a time")
        return names[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        shape, spacing, origin, direction = seg_grid(img)
        lps = np.eye(4)
        lps[:3, :3] = np.asarray(direction).reshape(3, 3) @ np.diag(spacing)
        lps[:3, 3] = origin
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
        meta = {
            "spacing": np.asarray(spacing),
            MetaKeys.ORIGINAL_AFFINE: affine,
            MetaKeys.AFFINE: affine.copy(),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.SPATIAL_SHAPE: np.asarray(shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
        }
        return seg_label_map(img), meta
