"""Readers and mask writers: array orientation, MONAI metadata and geometry round trips for every format.

Geometry is checked with both nibabel and SimpleITK: a voxel written at index (1, 2, 3) must sit at
the same physical point as that index of the source.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, Invertd, Orientationd, Spacingd
from PIL import Image

from medseg_monai.errors import InputError
from medseg_monai.io import (
    MASK_WRITERS,
    detect_format,
    image_loader,
    load_image,
    mask_filename,
    read_geometry,
    write_mask,
)
from medseg_monai.io.dicom import preserved_locale

SHAPE = (7, 9, 5)  # distinct sizes so a swapped axis cannot pass
SPACING = (0.7, 0.9, 3.0)
ORIGIN = (-12.5, 30.1, 7.3)
FLIP = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS


def rotation(z_deg: float = 20.0, x_deg: float = 10.0) -> np.ndarray:
    z, x = np.deg2rad(z_deg), np.deg2rad(x_deg)
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return rz @ rx


def ras_affine(direction: np.ndarray, spacing=SPACING, origin=ORIGIN) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def sitk_ras_affine(img) -> np.ndarray:
    """Index-to-RAS affine of a SimpleITK image or reader."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def source_data(shape=SHAPE, dtype=np.int16, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype(dtype)


def asymmetric_mask(shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, np.int64)
    mask[1, 2, 3] = 1
    mask[5, 7, 0] = 2
    return mask


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def assert_voxel_physical(mask_path: Path, affine_ras: np.ndarray) -> None:
    """SimpleITK finds label 1 at index (1, 2, 3), at the RAS point affine_ras @ (1, 2, 3)."""
    img = sitk.ReadImage(str(mask_path))
    assert sitk.GetArrayFromImage(img)[3, 2, 1] == 1  # SimpleITK arrays are (z, y, x)
    lps = np.asarray(img.TransformIndexToPhysicalPoint((1, 2, 3)))
    np.testing.assert_allclose(FLIP @ lps, (affine_ras @ [1, 2, 3, 1])[:3], atol=1e-4)


# ---------------------------------------------------------------------------------------------- NIfTI
NIFTI_CASES = {
    "ras": (np.eye(3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), 1, 1),
    "las": (np.diag([-1.0, 1.0, 1.0]), SPACING, ORIGIN, 1, 2),
    "lps": (np.diag([-1.0, -1.0, 1.0]), (1.0, 1.0, 2.0), (5.0, -3.0, 1.0), 2, 1),
    "oblique_qform_only": (rotation(), SPACING, ORIGIN, 1, 0),
    "oblique_las": (rotation() @ np.diag([-1.0, 1.0, 1.0]), SPACING, ORIGIN, 1, 1),
}


def make_nifti(path: Path, case: str, shape=SHAPE, slope: tuple[float, float] | None = None) -> Path:
    direction, spacing, origin, qcode, scode = NIFTI_CASES[case]
    affine = ras_affine(direction, spacing, origin)
    img = nib.Nifti1Image(source_data(shape), affine)
    img.set_qform(affine, qcode)
    img.set_sform(affine, scode)
    if slope:
        img.header.set_slope_inter(*slope)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("case", sorted(NIFTI_CASES))
def test_nifti_load_and_mask_round_trip(tmp_path, case):
    src_path = make_nifti(tmp_path / f"{case}.nii.gz", case)
    src = nib.load(str(src_path))
    image = image_loader(("image",))({"image": str(src_path)})["image"]
    assert tuple(image.shape) == src.shape == SHAPE
    np.testing.assert_allclose(np.asarray(image.meta["affine"]), src.affine, atol=1e-6)
    np.testing.assert_allclose(np.asarray(image), np.asarray(src.dataobj))
    assert tuple(np.asarray(image.meta["spatial_shape"])) == SHAPE
    assert np.isnan(float(image.meta["original_channel_dim"]))
    geometry, src_itk = read_geometry(src_path), sitk.ReadImage(str(src_path))
    assert geometry.shape == SHAPE and geometry.format == "nifti"
    np.testing.assert_allclose(geometry.affine_ras, src.affine, atol=1e-6)
    np.testing.assert_allclose(geometry.spacing, src_itk.GetSpacing(), atol=1e-5)  # LPS, as SimpleITK reports
    np.testing.assert_allclose(geometry.origin, src_itk.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(np.ravel(geometry.direction), src_itk.GetDirection(), atol=1e-5)

    out = write_mask(asymmetric_mask(), src_path, tmp_path / "out" / mask_filename(src_path))
    assert out.name == f"{case}.nii.gz"
    mask = nib.load(str(out))
    data = np.asarray(mask.dataobj)
    assert mask.shape == SHAPE and data.dtype == np.uint8 and mask.get_data_dtype() == np.uint8
    assert data[1, 2, 3] == 1 and data[5, 7, 0] == 2 and data.sum() == 3
    np.testing.assert_allclose(mask.affine, src.affine, atol=1e-6)
    for code in ("qform_code", "sform_code"):
        assert int(mask.header[code]) == int(src.header[code])
    assert mask.header.get_intent()[0] == "label"
    assert_voxel_physical(out, src.affine)
    mask_itk = sitk.ReadImage(str(out))
    np.testing.assert_allclose(mask_itk.GetOrigin(), src_itk.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(mask_itk.GetSpacing(), src_itk.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(mask_itk.GetDirection(), src_itk.GetDirection(), atol=1e-6)
    assert no_temp_files(out.parent)


def test_nifti_scaled_source_gives_unscaled_mask(tmp_path):
    src_path = make_nifti(tmp_path / "scaled.nii.gz", "las", slope=(2.5, 10.0))
    assert nib.load(str(src_path)).dataobj.slope == 2.5
    out = write_mask(asymmetric_mask(), src_path, tmp_path / "mask.nii.gz")
    mask = nib.load(str(out))
    assert mask.dataobj.slope == 1.0 and mask.dataobj.inter == 0.0
    np.testing.assert_array_equal(mask.get_fdata(), asymmetric_mask())
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(out)))[3, 2, 1] == 1
    assert load_image(out).dtype == torch.uint8


def test_nifti_trailing_singleton_dim(tmp_path):
    src_path = make_nifti(tmp_path / "four.nii.gz", "las", shape=SHAPE + (1,))
    image = image_loader(("image",))({"image": str(src_path)})["image"]
    assert tuple(image.shape) == SHAPE + (1,) and int(image.meta["original_channel_dim"]) == -1
    assert EnsureChannelFirstd("image")({"image": image})["image"].shape == (1,) + SHAPE
    assert read_geometry(src_path).shape == SHAPE
    out = write_mask(asymmetric_mask(), src_path, tmp_path / "mask.nii.gz")
    mask = nib.load(str(out))
    assert mask.shape == SHAPE and int(mask.header["dim"][0]) == 3
    np.testing.assert_allclose(mask.affine, nib.load(str(src_path)).affine, atol=1e-6)


def test_mask_dtype_and_value_checks(tmp_path):
    src_path = make_nifti(tmp_path / "src.nii.gz", "ras")
    big = asymmetric_mask()
    big[0, 0, 0] = 300
    out = write_mask(big, src_path, tmp_path / "big.nii.gz")
    assert np.asarray(nib.load(str(out)).dataobj).dtype == np.uint16 and nib.load(str(out)).dataobj[0, 0, 0] == 300
    write_mask(asymmetric_mask().astype(np.float32), src_path, tmp_path / "float_ok.nii.gz")
    with pytest.raises(ValueError, match="non-integer"):
        write_mask(np.full(SHAPE, 0.5), src_path, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match="negative"):
        write_mask(-asymmetric_mask(), src_path, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match="uint16"):
        write_mask(np.full(SHAPE, 70000), src_path, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match=r"bad\.nii\.gz.*\(9, 7, 5\).*\(7, 9, 5\)"):
        write_mask(np.zeros((9, 7, 5), np.uint8), src_path, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match="overwrite the source"):
        write_mask(asymmetric_mask(), src_path, src_path)
    with pytest.raises(ValueError, match="no mask writer"):
        write_mask(asymmetric_mask(), src_path, tmp_path / "bad.jpg", output_format="jpg")
    with pytest.raises(ValueError, match="does not match output format"):
        write_mask(asymmetric_mask(), src_path, tmp_path / "bad.png")
    assert not (tmp_path / "bad.nii.gz").exists() and no_temp_files(tmp_path)


def test_label_names_sidecar(tmp_path):
    src_path = make_nifti(tmp_path / "src.nii.gz", "ras")
    out = write_mask(
        asymmetric_mask(), src_path, tmp_path / "m" / "src.nii.gz", label_names=["background", "liver", "tumor"]
    )
    sidecar = json.loads((out.parent / "src.labels.json").read_text())
    assert sidecar == {"labels": {"0": "background", "1": "liver", "2": "tumor"}}
    write_mask(asymmetric_mask(), src_path, tmp_path / "m" / "v.nii.gz", label_names={0: "background", 255: "vessel"})
    assert json.loads((out.parent / "v.labels.json").read_text())["labels"] == {"0": "background", "255": "vessel"}
    assert no_temp_files(out.parent)


# ---------------------------------------------------------------------------------------------- MHA / NRRD
def make_itk(path: Path, components: int = 1) -> Path:
    data = source_data(SHAPE[::-1] + ((components,) if components > 1 else ()))
    img = sitk.GetImageFromArray(data, isVector=components > 1)
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    img.SetDirection(tuple((rotation() @ np.diag([-1.0, 1.0, 1.0])).ravel()))
    sitk.WriteImage(img, str(path))
    return path


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd", ".nhdr"])
def test_itk_formats_load_and_mask_round_trip(tmp_path, suffix):
    src_path = make_itk(tmp_path / f"scan{suffix}")
    src = sitk.ReadImage(str(src_path))
    image = image_loader(("image",))({"image": str(src_path)})["image"]
    assert tuple(image.shape) == SHAPE
    np.testing.assert_array_equal(np.asarray(image), sitk.GetArrayFromImage(src).T)
    np.testing.assert_allclose(np.asarray(image.meta["affine"]), sitk_ras_affine(src), atol=1e-6)
    np.testing.assert_allclose(np.asarray(image.meta["original_affine"]), sitk_ras_affine(src), atol=1e-6)
    np.testing.assert_allclose(np.asarray(image.meta["spacing"]), SPACING)
    assert image.meta["space"] == "RAS" and np.isnan(float(image.meta["original_channel_dim"]))
    geometry = read_geometry(src_path)
    assert geometry.shape == SHAPE and geometry.format == detect_format(src_path)
    np.testing.assert_allclose(np.ravel(geometry.direction), src.GetDirection(), atol=1e-12)

    out = write_mask(asymmetric_mask(), src_path, tmp_path / "out" / mask_filename(src_path))
    assert out.suffix == {".mhd": ".mha", ".nhdr": ".nrrd"}.get(suffix, suffix)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # one file, no temp left
    mask = sitk.ReadImage(str(out))
    assert mask.GetSize() == src.GetSize() and mask.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(mask.GetOrigin(), src.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(mask.GetSpacing(), src.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(mask.GetDirection(), src.GetDirection(), atol=1e-6)
    assert_voxel_physical(out, sitk_ras_affine(src))
    np.testing.assert_array_equal(np.asarray(load_image(out)), asymmetric_mask())


def test_mha_source_to_nifti_mask(tmp_path):
    src_path = make_itk(tmp_path / "scan.mha")
    affine = sitk_ras_affine(sitk.ReadImage(str(src_path)))
    out = write_mask(asymmetric_mask(), src_path, tmp_path / mask_filename(src_path, "nifti"), output_format="nifti")
    assert out.name == "scan.nii.gz"
    mask = nib.load(str(out))
    np.testing.assert_allclose(mask.affine, affine, atol=1e-5)
    assert int(mask.header["qform_code"]) == 1 and int(mask.header["sform_code"]) == 1
    assert np.asarray(mask.dataobj)[1, 2, 3] == 1
    assert_voxel_physical(out, affine)


def test_vector_mha_is_channel_last(tmp_path):
    src_path = make_itk(tmp_path / "rgb.mha", components=3)
    image = load_image(src_path)
    assert tuple(image.shape) == SHAPE + (3,) and int(image.meta["original_channel_dim"]) == -1
    assert tuple(np.asarray(image.meta["spatial_shape"])) == SHAPE


# ---------------------------------------------------------------------------------------------- DICOM
def make_dicom_series(folder: Path, uid: str = "1.2.826.0.1.3680043.2.1125.1", slices: int = 4) -> sitk.Image:
    with preserved_locale():  # GDCM's writer switches the process locale to C
        return _write_dicom_series(folder, uid, slices)


def _write_dicom_series(folder: Path, uid: str, slices: int) -> sitk.Image:
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(source_data((slices, 16, 16)))
    volume.SetSpacing((0.8, 0.8, 2.5))
    volume.SetOrigin((-20.0, 10.0, 5.0))
    volume.SetDirection(tuple(rotation(15.0, 0.0).ravel()))
    d = volume.GetDirection()
    tags = {
        "0008|0060": "CT",
        "0008|0008": "DERIVED\\SECONDARY",
        "0020|000d": uid + ".0",
        "0020|000e": uid,
        "0020|0037": "\\".join(f"{v:.10f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
        "0018|0050": "2.5",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(slices):
        plane = volume[:, :, k]
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0008|0018", f"{uid}.{k + 1}")
        plane.SetMetaData("0020|0013", str(k + 1))
        plane.SetMetaData("0020|0032", "\\".join(f"{v:.10f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))))
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(plane)
    return volume


def test_dicom_series_load_and_nifti_mask(tmp_path):
    folder = tmp_path / "series"
    make_dicom_series(folder)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    reference = sitk.ReadImage(files)
    image = image_loader(("image",))({"image": str(folder)})["image"]
    assert tuple(image.shape) == (16, 16, 4)
    np.testing.assert_allclose(np.asarray(image.meta["spacing"]), (0.8, 0.8, 2.5), atol=1e-4)
    np.testing.assert_allclose(np.asarray(image.meta["affine"]), sitk_ras_affine(reference), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(image), sitk.GetArrayFromImage(reference).T)
    assert read_geometry(folder).shape == (16, 16, 4)

    mask = np.zeros((16, 16, 4), np.uint8)
    mask[1, 2, 3] = 1
    out = write_mask(mask, folder, tmp_path / "out" / mask_filename(folder, "nifti"), output_format="nifti")
    assert out.name == "series.nii.gz"
    written = sitk.ReadImage(str(out))
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-5)
    np.testing.assert_allclose(nib.load(str(out)).affine, sitk_ras_affine(reference), atol=1e-4)
    assert_voxel_physical(out, sitk_ras_affine(reference))


def test_dicom_folder_with_two_series_is_refused_naming_both(tmp_path):
    folder = tmp_path / "mixed"
    make_dicom_series(folder, uid="1.2.826.0.1.3680043.2.1125.7", slices=4)
    make_dicom_series(tmp_path / "tmp_small", uid="1.2.826.0.1.3680043.2.1125.8", slices=2)
    for f in (tmp_path / "tmp_small").iterdir():
        f.rename(folder / f"b_{f.name}")
    with pytest.raises(
        InputError, match=r"mixed: 2 DICOM series in one folder: .*4 files, UID 1.2.826.0.1.3680043.2.1125.7.*2 files"
    ):
        load_image(folder)
    with pytest.raises(ValueError, match="no DICOM"):
        load_image(tmp_path / "tmp_small")


def test_a_localizer_series_beside_the_scan_is_left_out_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "study"
    make_dicom_series(folder, uid="1.2.826.0.1.3680043.2.1125.7", slices=4)
    make_dicom_series(tmp_path / "scout", uid="1.2.826.0.1.3680043.2.1125.8", slices=2)
    for f in (tmp_path / "scout").iterdir():
        data = f.read_bytes()
        assert b"DERIVED\\SECONDARY " in data
        (folder / f"scout_{f.name}").write_bytes(data.replace(b"DERIVED\\SECONDARY ", b"ORIGINAL\\LOCALIZER"))
    with caplog.at_level(logging.WARNING):
        assert tuple(load_image(folder).shape) == (16, 16, 4)
    assert "left out series 1.2.826.0.1.3680043.2.1125.8 (a localizer, 2 files)" in caplog.text


def test_dicom_series_with_a_missing_or_broken_slice_is_refused(tmp_path):
    gap = tmp_path / "gap"
    make_dicom_series(gap, slices=6)
    (gap / "slice_003.dcm").unlink()
    with pytest.raises(InputError, match=r"gap: missing slice\(s\): a gap of 5 mm .* 2.5 mm apart"):
        load_image(gap)
    broken = tmp_path / "broken"
    make_dicom_series(broken, slices=5)
    data = (broken / "slice_002.dcm").read_bytes()
    (broken / "slice_002.dcm").write_bytes(data[:200])
    with pytest.raises(InputError, match=r"slice_002.dcm: (unreadable DICOM slice|a DICOM file that is not a slice)"):
        load_image(broken)


# ---------------------------------------------------------------------------------------------- raster
def asymmetric_gray(dtype=np.uint8, bright=200) -> np.ndarray:
    array = np.zeros((20, 30), dtype)
    array[2, 25] = bright
    array[15, 3] = bright // 2
    return array


def test_png_gray_orientation_and_mask_round_trip(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(asymmetric_gray()).save(path)
    image = image_loader(("image",))({"image": str(path)})["image"]
    assert tuple(image.shape) == (20, 30) and image[2, 25] == 200 and image[15, 3] == 100
    assert tuple(np.asarray(image.meta["spatial_shape"])) == (20, 30)
    assert EnsureChannelFirstd("image")({"image": image})["image"].shape == (1, 20, 30)
    assert read_geometry(path).shape == (20, 30)
    out = write_mask((np.asarray(image) > 50).astype(np.uint8) * 255, path, tmp_path / "masks" / "gray.png")
    back = Image.open(out)
    assert back.size == (30, 20) and back.mode == "L"
    np.testing.assert_array_equal(np.asarray(back), (asymmetric_gray() > 50) * 255)
    np.testing.assert_array_equal(np.asarray(load_image(out)), np.asarray(back))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P_color", "P_gray", "1"])
def test_png_modes(tmp_path, mode):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = asymmetric_gray()
    path = tmp_path / f"{mode}.png"
    if mode == "RGB":
        Image.fromarray(rgb).save(path)
        expected = rgb
    elif mode == "RGBA":
        Image.fromarray(np.dstack([rgb, np.full((20, 30), 7, np.uint8)])).save(path)
        expected = rgb
    elif mode == "LA":
        Image.fromarray(np.dstack([gray, np.full_like(gray, 9)])).save(path)
        expected = gray
    elif mode == "P_color":
        img = Image.fromarray(rgb).quantize(colors=16)
        img.save(path)
        expected = np.asarray(img.convert("RGB"))
    elif mode == "P_gray":
        Image.fromarray(gray).convert("P").save(path)
        expected = gray
    else:
        Image.fromarray(gray > 0).save(path)
        expected = (gray > 0).astype(np.uint8) * 255
    image = load_image(path)
    assert image.dtype == torch.uint8
    np.testing.assert_array_equal(np.asarray(image), expected)
    channel_dim = image.meta["original_channel_dim"]
    assert (int(channel_dim) == -1) if expected.ndim == 3 else np.isnan(float(channel_dim))
    if expected.ndim == 3:
        loaded = Compose([image_loader(("image",)), EnsureChannelFirstd("image")])({"image": str(path)})["image"]
        assert tuple(loaded.shape) == (3, 20, 30)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_values_kept(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(asymmetric_gray(np.uint16, bright=4000)).save(path)
    image = load_image(path)
    assert image.dtype == torch.int32  # MONAI widens uint16 for torch
    assert int(image[2, 25]) == 4000 and int(image[15, 3]) == 2000
    assert float(image_loader(("image",))({"image": str(path)})["image"][2, 25]) == 4000.0
    labels = (asymmetric_gray() > 0).astype(np.int64) * 300
    out = write_mask(labels, path, tmp_path / "out" / mask_filename(path))
    assert out.suffix == suffix and Image.open(out).mode == "I;16"
    np.testing.assert_array_equal(np.asarray(Image.open(out)), labels)


def test_tif_8bit_round_trip(tmp_path):
    path = tmp_path / "eight.tiff"
    Image.fromarray(asymmetric_gray()).save(path)
    image = load_image(path)
    assert tuple(image.shape) == (20, 30) and image[2, 25] == 200
    out = write_mask(asymmetric_gray() > 0, path, tmp_path / "out" / mask_filename(path))
    assert out.name == "eight.tif"
    np.testing.assert_array_equal(np.asarray(Image.open(out)), (asymmetric_gray() > 0).astype(np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_jpg_and_bmp_sources_get_png_masks(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(np.dstack([asymmetric_gray()] * 3)).save(path)
    image = load_image(path)
    assert tuple(image.shape) == (20, 30, 3) and int(image[2, 25, 0]) > 150
    assert mask_filename(path) == "photo.png"
    out = write_mask(asymmetric_gray() > 0, path, tmp_path / "out" / mask_filename(path))
    assert Image.open(out).format == "PNG" and Image.open(out).size == (30, 20)


def test_raster_errors(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8).tobytes())
    for call in (load_image, read_geometry, lambda p: image_loader(("image",))({"image": str(p)})):
        with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
            call(corrupt)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        read_geometry(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported image format"):
        load_image(tmp_path / "notes.txt")
    good = tmp_path / "good.png"
    Image.fromarray(asymmetric_gray()).save(good)
    with pytest.raises(ValueError, match=r"mask shape \(30, 20\)"):
        write_mask(np.zeros((30, 20), np.uint8), good, tmp_path / "out" / "good.png")
    volume = make_nifti(tmp_path / "volume.nii.gz", "ras")
    with pytest.raises(ValueError, match="3D mask cannot be written as a raster"):
        write_mask(asymmetric_mask(), volume, tmp_path / "out" / "volume.png", output_format="png")
    assert not (tmp_path / "out").exists() or no_temp_files(tmp_path / "out")


@pytest.mark.parametrize("name", ["broken.nii.gz", "broken.mha", "broken.nrrd", "broken.tif"])
def test_corrupt_files_name_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not an image at all" * 20)
    for call in (load_image, read_geometry):
        with pytest.raises(ValueError, match=f"{name}: (cannot read image|not a MetaImage header)"):
            call(path)


def test_files_listed_in_one_key_are_stacked_as_channels(tmp_path):
    pngs = [tmp_path / f"c{i}.png" for i in range(2)]
    for i, path in enumerate(pngs):
        Image.fromarray(asymmetric_gray() + i).save(path)
    volumes = [make_itk(tmp_path / f"c{i}.mha") for i in range(2)]
    loader = image_loader(("image", "label"))
    item = loader({"image": [str(p) for p in pngs], "label": [str(p) for p in volumes]})
    assert tuple(item["image"].shape) == (2, 20, 30) and float(item["image"][1, 2, 25]) == 201.0
    assert tuple(item["label"].shape) == (2,) + SHAPE and int(item["label"].meta["original_channel_dim"]) == 0


def test_writer_registry():
    assert {"nifti", "mha", "nrrd", "png", "tif"} <= set(MASK_WRITERS)


# ---------------------------------------------------------------------------------------------- MONAI inversion
@pytest.mark.parametrize("kind", ["nifti", "mha"])
def test_orientation_spacing_invert_then_write(tmp_path, kind):
    shape = (12, 14, 8)
    data = np.zeros(shape, np.int16)
    data[2:10, 3:12, 2:7] = 100
    direction = rotation(25.0, 0.0) @ np.diag([-1.0, 1.0, 1.0])  # oblique LAS
    if kind == "nifti":
        src_path = tmp_path / "scan.nii.gz"
        nib.save(nib.Nifti1Image(data, ras_affine(direction)), str(src_path))
    else:
        src_path = tmp_path / "scan.mha"
        img = sitk.GetImageFromArray(data.T.copy())
        img.SetSpacing(SPACING)
        img.SetOrigin(ORIGIN)
        img.SetDirection(tuple((FLIP @ direction).ravel()))
        sitk.WriteImage(img, str(src_path))
    truth = data > 50

    def threshold_and_invert(pixdim) -> np.ndarray:
        pre = Compose(
            [
                image_loader(("image",)),
                EnsureChannelFirstd("image"),
                Orientationd("image", axcodes="RAS"),
                Spacingd("image", pixdim=pixdim, mode="bilinear"),
            ]
        )
        item = pre({"image": str(src_path)})
        image = item["image"]
        label = MetaTensor(
            (image > 50).float(), meta=dict(image.meta), applied_operations=list(image.applied_operations)
        )
        inverted = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)({**item, "pred": label})[
            "pred"
        ]
        assert tuple(inverted.shape) == (1,) + shape
        return torch.as_tensor(inverted)[0].round().to(torch.int64).numpy()

    np.testing.assert_array_equal(threshold_and_invert(SPACING), truth)  # reorientation alone is exact
    mask = threshold_and_invert((1.0, 1.0, 1.0))  # resampled: edges may move by a voxel
    dice = 2 * np.logical_and(mask, truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.9
    out = write_mask(mask, src_path, tmp_path / "out" / mask_filename(src_path))
    src_geo, out_geo = read_geometry(src_path), read_geometry(out)
    assert out_geo.shape == src_geo.shape == shape
    np.testing.assert_allclose(out_geo.affine_ras, src_geo.affine_ras, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(load_image(out)), mask)


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.parametrize("case", ["brain1", "breast1"])  # LAS 6.5 mm slices; LPS
def test_real_nrrd_and_nifti_conversion_agree(shared_data_dir, tmp_path, case):
    root = shared_data_dir / "radiomics_tumor3d_mini"
    nrrd, nifti = root / "nrrd" / f"{case}_image.nrrd", root / "imagesTr" / f"{case}.nii.gz"
    label_nrrd, label_nifti = root / "nrrd" / f"{case}_label.nrrd", root / "labelsTr" / f"{case}.nii.gz"
    if not all(p.exists() for p in (nrrd, nifti, label_nrrd, label_nifti)):
        pytest.skip(f"{root}: {case} NRRD/NIfTI pair not present")
    loader = image_loader(("image", "label"))
    a = loader({"image": str(nrrd), "label": str(label_nrrd)})
    b = loader({"image": str(nifti), "label": str(label_nifti)})
    for key in ("image", "label"):
        assert a[key].shape == b[key].shape
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
        np.testing.assert_allclose(np.asarray(a[key].meta["affine"]), np.asarray(b[key].meta["affine"]), atol=1e-3)
    labels = np.asarray(a["label"]).astype(np.int64)
    for src in (nrrd, nifti):
        out = write_mask(labels, src, tmp_path / mask_filename(src))
        np.testing.assert_allclose(read_geometry(out).affine_ras, read_geometry(src).affine_ras, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(load_image(out)), labels)
    src_itk, out_itk = sitk.ReadImage(str(nrrd)), sitk.ReadImage(str(tmp_path / mask_filename(nrrd)))
    assert out_itk.GetSize() == src_itk.GetSize()
    np.testing.assert_allclose(out_itk.GetOrigin(), src_itk.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(out_itk.GetDirection(), src_itk.GetDirection(), atol=1e-6)


def test_real_png_orientation(shared_data_dir):
    paths = [
        next(iter(sorted((shared_data_dir / name / "images").glob("*.png"))), None)
        for name in ("drive_retina", "isbi2012_em")
    ]
    paths = [p for p in paths if p is not None]
    if not paths:
        pytest.skip("no real PNG images present")
    for path in paths:
        expected = np.asarray(Image.open(path).convert("RGB" if Image.open(path).mode != "L" else "L"))
        image = load_image(path)
        np.testing.assert_array_equal(np.asarray(image), expected)
        assert read_geometry(path).shape == expected.shape[:2]
