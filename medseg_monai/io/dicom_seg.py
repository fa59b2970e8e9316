"""DICOM Segmentation (SEG) masks of DICOM series, written with highdicom.

The SEG (Segmentation Storage, Modality SEG, BINARY, empty frames omitted) lies in its source series' study and frame
of reference, references the series and, per frame, the source slice it lies on, and has its plane positions,
orientation and pixel measures. It holds one segment per foreground class: every named label value but background 0
(classes absent from this mask too, described without frames, so segment numbers are the same in every case) plus any
other value present. Segment numbers are 1, 2, ... in the order of the label values. Each segment carries its label
name, the algorithm (AUTOMATIC, ``medseg-monai`` and its version) and SNOMED CT codes from
:mod:`medseg_monai.io.snomed` (the generic *Tissue* for names it does not know).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.errors import InputError
from medseg_monai.io.dicom import dicom_folder
from medseg_monai.io.dicom_series import dicom_series_files
from medseg_monai.io.geometry import Geometry
from medseg_monai.io.seg_files import read_seg_header, referenced_instances
from medseg_monai.io.snomed import property_codes
from medseg_monai.io.writers import register_writer

__all__ = ["ALGORITHM_NAME", "seg_matches_source", "segment_values", "source_datasets", "write_seg"]

logger = logging.getLogger(__name__)

#: AlgorithmName of every segment, and the SEG's Manufacturer / ManufacturerModelName
ALGORITHM_NAME = "medseg-monai"
#: the SEG's SeriesNumber is the source's plus this
SERIES_NUMBER_OFFSET = 1000


def _version() -> str:
    """The installed package's version (``importlib.metadata``), ``unknown`` for a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medseg-monai")
    except PackageNotFoundError:
        return "unknown"


def source_datasets(source: str | Path) -> list[Any]:
    """The pydicom headers (no pixel data) of the slices of a DICOM input, in the readers' slice order."""
    import pydicom

    with dicom_folder(source) as (folder, uid):
        return [pydicom.dcmread(name, stop_before_pixels=True) for name in dicom_series_files(folder, uid)]


def segment_values(mask: np.ndarray, label_names: Mapping[int, str] | None, background: int = 0) -> list[int]:
    """Label values that become segments, in segment-number order: every named value and every value present, but
    ``background``."""
    present = np.flatnonzero(np.bincount(mask.ravel())) if mask.size else np.array([], dtype=np.int64)
    values = sorted({int(v) for v in present} | {int(v) for v in (label_names or {})})
    return [v for v in values if v != background] or [1]  # a SEG needs one segment: an empty mask of an unnamed model


def _description(number: int, value: int, name: str, version: str) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    category, kind, modifier = property_codes(name).codes()
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=ALGORITHM_NAME, version=version, family=codes.cid7162.ArtificialIntelligence
        ),
    )
    if modifier is not None:  # laterality: the DICOM way, a modifier of the segmented property type
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept(
                value=modifier.value, scheme_designator=modifier.scheme_designator, meaning=modifier.meaning
            )
        ]
    return description


@register_writer("seg", label_names=True)
def write_seg(
    mask: np.ndarray, source: Path, geometry: Geometry, tmp: Path, *, label_names: Mapping[int, str] | None = None
) -> None:
    """Write ``mask`` (``(X, Y, Z)``, the source series' grid) as a DICOM SEG of the series ``source`` to ``tmp``."""
    import highdicom as hd

    if geometry.format != "dicom" or mask.ndim != 3:
        raise InputError(f"{source}: a DICOM SEG needs a DICOM series source")
    datasets = source_datasets(source)
    first = datasets[0]
    if (len(datasets), int(first.Rows), int(first.Columns)) != (mask.shape[2], mask.shape[1], mask.shape[0]):
        raise InputError(
            f"{source}: {len(datasets)} slices of {first.Rows}x{first.Columns} do not hold a mask of shape {mask.shape}"
        )
    names = dict(label_names or {})
    values = segment_values(mask, names)
    version = _version()
    table = np.zeros(max(int(mask.max(initial=0)), max(values)) + 1, dtype=np.uint8 if len(values) < 256 else np.uint16)
    for number, value in enumerate(values, start=1):
        table[value] = number
    numbers = table[mask].transpose(2, 1, 0)  # (frames = z, rows = y, columns = x), frame k on source slice k
    try:
        series_number = int(first.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET
    except (TypeError, ValueError):
        series_number = SERIES_NUMBER_OFFSET
    try:
        seg = _segmentation(hd, datasets, numbers, values, names, version, series_number)
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # highdicom's checks of the source slices
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{source}: cannot make a DICOM SEG of this series ({reason}); "
            "write another format with --output-format nifti"
        ) from err
    seg.SeriesDescription = f"SEG {first.get('SeriesDescription', '')}".strip()[:64]
    seg.save_as(str(tmp))
    logger.debug("%s: SEG of %d segment(s), %d frame(s)", source, len(values), int(seg.NumberOfFrames))


def _segmentation(
    hd: Any,
    datasets: list[Any],
    numbers: np.ndarray,
    values: list[int],
    names: Mapping[int, str],
    version: str,
    series_number: int,
) -> Any:
    return hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=numbers,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _description(n, v, names.get(v, f"label_{v}"), version) for n, v in enumerate(values, start=1)
        ],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=version,
        device_serial_number="0",
        content_label="MEDSEG",
        content_description="Automatic segmentation",
        omit_empty_frames=bool(numbers.any()),  # an empty mask keeps its (empty) frames: a SEG needs one
    )


def seg_matches_source(output: str | Path, source: str | Path) -> None:
    """Check that the SEG ``output`` is a whole SEG of ``source``: it references the source series and every one of its
    slices, has their rows and columns, and holds all its pixel data.

    Raises:
        InputError: naming what does not match.
    """
    ds = read_seg_header(output, pixels=True)
    datasets = source_datasets(source)
    series = {d.SeriesInstanceUID for d in datasets}
    referenced = ds.ReferencedSeriesSequence[0].SeriesInstanceUID if ds.get("ReferencedSeriesSequence") else None
    if referenced not in series:
        raise InputError(f"{output}: references series {referenced}, not {source}'s")
    if referenced_instances(ds) != [d.SOPInstanceUID for d in datasets]:
        raise InputError(f"{output}: does not reference the {len(datasets)} slices of {source}")
    if (int(ds.Rows), int(ds.Columns)) != (int(datasets[0].Rows), int(datasets[0].Columns)):
        raise InputError(
            f"{output}: {ds.Rows}x{ds.Columns} frames, the source's are {datasets[0].Rows}x{datasets[0].Columns}"
        )
    need = (int(ds.NumberOfFrames) * int(ds.Rows) * int(ds.Columns) + 7) // 8
    if len(ds.get("PixelData", b"")) < need:
        raise InputError(f"{output}: truncated pixel data")
