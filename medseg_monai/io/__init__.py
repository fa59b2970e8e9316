"""Reading images of every supported format into MONAI, and writing masks in their source's geometry."""

from medseg_monai.io.formats import (
    FORMAT_SUFFIXES,
    IMAGE_SUFFIXES,
    MASK_FORMAT_FOR,
    RASTER_FORMATS,
    VOLUME_FORMATS,
    detect_format,
    is_dicom_series_dir,
    mask_filename,
    split_suffix,
)
from medseg_monai.io.readers import (
    FormatDispatchReader,
    Geometry,
    RasterReader,
    SimpleITKReader,
    image_loader,
    load_image,
    read_geometry,
    reader_for_format,
)
from medseg_monai.io.writers import MASK_WRITERS, label_sidecar_path, mask_dtype, register_writer, write_mask

__all__ = [
    "FORMAT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MASK_FORMAT_FOR",
    "MASK_WRITERS",
    "RASTER_FORMATS",
    "VOLUME_FORMATS",
    "FormatDispatchReader",
    "Geometry",
    "RasterReader",
    "SimpleITKReader",
    "detect_format",
    "image_loader",
    "is_dicom_series_dir",
    "label_sidecar_path",
    "load_image",
    "mask_dtype",
    "mask_filename",
    "read_geometry",
    "reader_for_format",
    "register_writer",
    "split_suffix",
    "write_mask",
]
