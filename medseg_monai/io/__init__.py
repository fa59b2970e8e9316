"""Reading images of every supported format into MONAI, writing masks in their source's geometry (DICOM series: a
DICOM SEG), and facts about written masks (complete or not, checksums, label statistics)."""

from medseg_monai.io.dicom import DicomSeries, is_dicom_input
from medseg_monai.io.dicom_discovery import expand_dicom_inputs
from medseg_monai.io.dicom_seg import write_seg  # registers the "seg" writer
from medseg_monai.io.formats import (
    FORMAT_SUFFIXES,
    IMAGE_SUFFIXES,
    MASK_FORMAT_FOR,
    MASK_SUFFIXES,
    RASTER_FORMATS,
    VOLUME_FORMATS,
    detect_format,
    is_dicom_series_dir,
    mask_filename,
    spatial_dims_of,
    split_suffix,
)
from medseg_monai.io.geometry import Geometry, read_geometry
from medseg_monai.io.outputs import (
    as_label_map,
    count_components,
    file_sha256,
    is_complete,
    mask_statistics,
    remove_stale_temporaries,
    value_counts,
)
from medseg_monai.io.readers import (
    FormatDispatchReader,
    RasterReader,
    SimpleITKReader,
    image_loader,
    load_image,
    reader_for_format,
)
from medseg_monai.io.validation import recorded_warnings
from medseg_monai.io.writers import MASK_WRITERS, label_sidecar_path, mask_dtype, register_writer, write_mask

__all__ = [
    "DicomSeries",
    "FORMAT_SUFFIXES",
    "FormatDispatchReader",
    "Geometry",
    "IMAGE_SUFFIXES",
    "MASK_FORMAT_FOR",
    "MASK_SUFFIXES",
    "MASK_WRITERS",
    "RASTER_FORMATS",
    "RasterReader",
    "SimpleITKReader",
    "VOLUME_FORMATS",
    "as_label_map",
    "count_components",
    "detect_format",
    "expand_dicom_inputs",
    "file_sha256",
    "image_loader",
    "is_complete",
    "is_dicom_input",
    "is_dicom_series_dir",
    "label_sidecar_path",
    "load_image",
    "mask_dtype",
    "mask_filename",
    "mask_statistics",
    "read_geometry",
    "reader_for_format",
    "recorded_warnings",
    "register_writer",
    "remove_stale_temporaries",
    "spatial_dims_of",
    "split_suffix",
    "value_counts",
    "write_mask",
    "write_seg",
]
