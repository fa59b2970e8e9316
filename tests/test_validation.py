"""Images and masks that can be read but are odd: each is refused with a message naming the file, or used with a
warning, never turned silently into a wrong mask (medseg_monai.io.validation, data.properties)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medseg_monai.config import InputChecks
from medseg_monai.data.properties import check_pairs, collect_label_values
from medseg_monai.errors import ConfigError, InputError
from medseg_monai.io import image_loader, load_image
from tests.helpers import predict_batch, threshold_predictor


def blob_volume(shape=(24, 20, 12)) -> np.ndarray:
    """A bright box in a dim, noisy volume: the threshold network's mask is the box."""
    rng = np.random.default_rng(0)
    volume = rng.normal(100.0, 5.0, shape).astype(np.float32)
    volume[6:16, 5:14, 3:9] += 300.0
    return volume


def save_nifti(path, array, affine=None) -> str:
    nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.5, 3.0, 1.0]) if affine is None else affine), str(path))
    return str(path)


def test_one_nan_voxel_is_replaced_with_a_warning_and_the_mask_is_unchanged(tmp_path, caplog):
    clean, spoiled = blob_volume(), blob_volume()
    spoiled[1, 2, 3] = np.nan
    spoiled[20, 2, 3] = -np.inf
    (tmp_path / "in").mkdir()
    save_nifti(tmp_path / "in" / "clean.nii.gz", clean)
    save_nifti(tmp_path / "in" / "spoiled.nii.gz", spoiled)
    before = (tmp_path / "in" / "spoiled.nii.gz").read_bytes()
    predictor = threshold_predictor(3)
    with caplog.at_level(logging.WARNING):
        results = predict_batch(predictor, tmp_path / "in", tmp_path / "out")
    assert [r.status for r in results] == ["written", "written"]
    assert "spoiled.nii.gz: 1 NaN, 1 infinite voxel(s) of 5,760 replaced" in caplog.text
    warned = {r.input.name: r.warnings for r in results}
    assert warned["clean.nii.gz"] == () and "1 NaN, 1 infinite voxel(s)" in warned["spoiled.nii.gz"][0]
    records = {
        Path(r["input"]).name: r for r in json.loads((tmp_path / "out" / "predict_manifest.json").read_text())["cases"]
    }
    assert "input_warning" in records["spoiled.nii.gz"]["flags"] and records["spoiled.nii.gz"]["warnings"] == list(
        warned["spoiled.nii.gz"]
    )
    assert "input_warning" not in records["clean.nii.gz"]["flags"]
    masks = {r.input.name: np.asarray(nib.load(str(r.output)).dataobj) for r in results}
    assert masks["clean.nii.gz"].sum() == 10 * 9 * 6
    np.testing.assert_array_equal(masks["spoiled.nii.gz"], masks["clean.nii.gz"])
    assert (tmp_path / "in" / "spoiled.nii.gz").read_bytes() == before


def test_strict_refuses_non_finite_voxels_and_a_mask_never_has_them(tmp_path):
    volume = blob_volume()
    volume[0, 0, 0] = np.nan
    path = save_nifti(tmp_path / "nan.nii.gz", volume)
    with pytest.raises(InputError, match=r"nan.nii.gz: 1 NaN voxel\(s\) \(without --strict"):
        load_image(path, checks=InputChecks(strict=True))
    with pytest.raises(InputError, match=r"nan.nii.gz: 1 NaN voxel"):
        load_image(path, role="mask")
    assert float(np.asarray(load_image(path, checks=InputChecks(nan_value=-5.0)))[0, 0, 0]) == -5.0
    with pytest.raises(InputError, match="no finite voxel"):
        load_image(save_nifti(tmp_path / "all_nan.nii.gz", np.full((4, 4, 4), np.nan, np.float32)))


def test_4d_volume_is_refused_unless_a_volume_is_chosen(tmp_path, caplog):
    frames = np.stack([blob_volume() * (k + 1) for k in range(3)], axis=-1)
    path = save_nifti(tmp_path / "dyn.nii.gz", frames)
    with pytest.raises(
        InputError,
        match=r"dyn.nii.gz: a 4D image of 3 volumes, but the model takes 1 channel\(s\); "
        r"choose one with --volume-index \(0..2\)",
    ):
        image_loader("image", channels=1)({"image": path})
    with caplog.at_level(logging.WARNING):
        chosen = image_loader("image", checks=InputChecks(volume_index=2), channels=1)({"image": path})["image"]
    assert "3 volumes, segmenting volume 2" in caplog.text
    np.testing.assert_array_equal(np.asarray(chosen), frames[..., 2])
    with pytest.raises(InputError, match="volume_index 5 is out of range for 3 volumes"):
        image_loader("image", checks=InputChecks(volume_index=5), channels=1)({"image": path})
    assert (
        image_loader("image", channels=3)({"image": path})["image"].shape == frames.shape
    )  # three channels: a 3-channel model


def test_predict_refuses_a_4d_volume_and_segments_the_chosen_one(tmp_path):
    (tmp_path / "in").mkdir()
    save_nifti(tmp_path / "in" / "dyn.nii.gz", np.stack([blob_volume(), blob_volume() * 0 + 100], axis=-1))
    failed = predict_batch(threshold_predictor(3), tmp_path / "in", tmp_path / "out")
    assert failed[0].status == "failed" and "a 4D image of 2 volumes" in failed[0].error and not failed[0].internal
    chosen = threshold_predictor(3).__class__(
        threshold_predictor(3).network, threshold_predictor(3).config, checks=InputChecks(volume_index=0)
    )
    written = predict_batch(chosen, tmp_path / "in", tmp_path / "out")
    mask = np.asarray(nib.load(str(written[0].output)).dataobj)
    assert mask.shape == (24, 20, 12) and mask.sum() == 10 * 9 * 6


@pytest.mark.parametrize(
    ("dtype", "message"),
    [(np.complex64, "complex-valued voxels"), (np.complex128, "complex-valued voxels")],
)
def test_complex_images_are_refused(tmp_path, dtype, message):
    array = (blob_volume() + 1j * blob_volume()).astype(dtype)
    path = save_nifti(tmp_path / "c.nii.gz", array)
    with pytest.raises(InputError, match=f"c.nii.gz: {message}"):
        load_image(path)


def test_bad_spacing_and_directions_are_refused(tmp_path):
    volume = blob_volume((6, 6, 6))
    sheared = np.diag([1.0, 1.0, 1.0, 1.0])
    sheared[0, 1] = 0.4
    with pytest.raises(InputError, match="shear.nii.gz: the direction axes are not orthonormal"):
        load_image(save_nifti(tmp_path / "shear.nii.gz", volume, sheared))
    save_nifti(tmp_path / "flat.nii", volume, np.eye(4))
    raw = bytearray((tmp_path / "flat.nii").read_bytes())
    raw[84:88] = np.float32(0.0).tobytes()  # pixdim[2] = 0
    raw[252:256] = np.int16(1).tobytes() + np.int16(0).tobytes()  # qform only
    (tmp_path / "flat.nii").write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"flat.nii: (voxel spacing .* must be positive and finite|cannot read image)"):
        load_image(tmp_path / "flat.nii")
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((1.0, 1.0, 1.0))
    path = str(tmp_path / "neg.mha")
    sitk.WriteImage(image, path)
    text = (tmp_path / "neg.mha").read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 0 1")
    (tmp_path / "neg.mha").write_bytes(text)
    with pytest.raises(
        InputError,
        match=r"neg.mha: cannot read image \(Zero-valued spacing is not supported.* "
        r"Refusing to change spacing from \[1, 1, 1\] to \[1, 0, 1\]\)",
    ):
        load_image(path)


def test_constant_image_warns_and_still_gets_a_mask(tmp_path, caplog):
    (tmp_path / "in").mkdir()
    save_nifti(tmp_path / "in" / "flat.nii.gz", np.full((20, 20, 10), 7.0, np.float32))
    with caplog.at_level(logging.WARNING):
        results = predict_batch(threshold_predictor(3), tmp_path / "in", tmp_path / "out")
    assert results[0].status == "written"
    assert "flat.nii.gz: the image is constant (every voxel 7.0)" in caplog.text


def test_memory_guard_and_a_header_that_claims_more_than_the_file(tmp_path):
    path = save_nifti(tmp_path / "big.nii", blob_volume())
    with pytest.raises(InputError, match=r"big.nii: header claims 24x20x12 = 5,760 voxels, more than max_voxels 1,000"):
        load_image(path, checks=InputChecks(max_voxels=1000))
    data = (tmp_path / "big.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut.nii: truncated: the header claims 24x20x12 voxels \(23,392 bytes"):
        load_image(tmp_path / "cut.nii")
    with pytest.raises(ConfigError, match="max_voxels must be a positive integer"):
        InputChecks(max_voxels=0)


def _png(path, array) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def test_training_masks_that_are_not_label_maps_are_refused(tmp_path):
    base = np.zeros((16, 16), np.uint8)
    base[4:12, 4:12] = 255
    smooth = base.copy()
    smooth[4, 4:12] = 128  # an anti-aliased edge
    good, edge = _png(tmp_path / "a.png", base), _png(tmp_path / "b.png", smooth)
    assert collect_label_values([good], 2) == (0, 255)
    with pytest.raises(
        InputError,
        match=r"b.png: mask values \[0, 128, 255\] .* do not look like class labels .* "
        r"set data.label_values \(--label-values 0 128 255\)",
    ):
        collect_label_values([good, edge], 2)
    assert collect_label_values([good, edge], 2, expected=(0, 128, 255)) == (0, 128, 255)
    with pytest.raises(InputError, match=r"b.png: mask values \[128\] are not in data.label_values \[0, 255\]"):
        collect_label_values([good, edge], 2, expected=(0, 255))
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[2:6, 2:6, 0] = 255
    rgb[8:12, 8:12, 1] = 255
    with pytest.raises(InputError, match=r"c.png: a colour mask \(3 channels that differ\)"):
        collect_label_values([_png(tmp_path / "c.png", rgb)], 2)
    sparse = np.zeros((8, 8, 4), np.uint16)
    sparse[1:3, 1:3, 1:3], sparse[5:7, 5:7, 1:3] = 1000, 2000
    path = save_nifti(tmp_path / "s.nii.gz", sparse)
    with pytest.raises(InputError, match=r"s.nii.gz: mask values \[0, 1000, 2000\]"):
        collect_label_values([path], 3)
    floats = np.zeros((8, 8, 4), np.float32)
    floats[1:3, 1:3, 1:3], floats[5:7, 5:7, 1:3] = 0.37, 0.74
    with pytest.raises(InputError, match=r"f.nii.gz: mask values 0, 0.37, 0.74 are not integers"):
        collect_label_values([save_nifti(tmp_path / "f.nii.gz", floats)], 3)


def test_image_and_mask_on_different_grids_are_refused(tmp_path):
    image = save_nifti(tmp_path / "img.nii.gz", blob_volume())
    shifted = np.diag([1.5, 1.5, 3.0, 1.0])
    shifted[:3, 3] = (4.0, 0.0, 0.0)
    label = save_nifti(tmp_path / "lbl.nii.gz", np.zeros((24, 20, 12), np.uint8), shifted)
    with pytest.raises(InputError, match=r"img.nii.gz and its mask .*lbl.nii.gz lie on different grids .* origin"):
        check_pairs([{"image": image, "label": label}])
    close = np.diag([1.5, 1.5, 3.0, 1.0])
    close[:3, 3] = (1e-4, 0.0, 0.0)
    check_pairs(
        [{"image": image, "label": save_nifti(tmp_path / "ok.nii.gz", np.zeros((24, 20, 12), np.uint8), close)}]
    )


def test_images_smaller_than_the_window_are_padded_and_cropped_back(tmp_path):
    (tmp_path / "in").mkdir()
    small = np.zeros((10, 13), np.uint8)
    small[2:6, 3:11] = 200
    _png(tmp_path / "in" / "small.png", small)
    volume = blob_volume((9, 7, 5))
    volume[:] = 100.0
    volume[2:5, 1:4, 1:3] = 400.0
    (tmp_path / "vol").mkdir()
    save_nifti(tmp_path / "vol" / "small.nii.gz", volume)
    png = predict_batch(threshold_predictor(2), tmp_path / "in", tmp_path / "out2d")[0]
    mask = np.asarray(Image.open(png.output))
    assert mask.shape == (10, 13)
    np.testing.assert_array_equal(mask > 0, small > 0)
    nifti = predict_batch(threshold_predictor(3), tmp_path / "vol", tmp_path / "out3d")[0]
    mask3 = np.asarray(nib.load(str(nifti.output)).dataobj)
    assert mask3.shape == (9, 7, 5)
    np.testing.assert_array_equal(mask3 > 0, volume > 250)


def test_valid_but_unusual_files_are_not_refused(tmp_path):
    """MetaImage headers with DICOM-tag keys (as SimpleITK writes them), 4-byte MET_INT voxels, BraTS-style labels
    0/1/2/4."""
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int32).reshape(3, 4, 5))
    image.SetMetaData("0008|0060", "CT")
    path = str(tmp_path / "tags.mha")
    sitk.WriteImage(image, path)
    np.testing.assert_array_equal(np.asarray(load_image(path)).T, sitk.GetArrayFromImage(image))
    brats = np.zeros((8, 8, 4), np.uint8)
    brats[1:3, 1:3, 1], brats[3:5, 3:5, 1], brats[5:7, 5:7, 1] = 1, 2, 4
    assert collect_label_values([save_nifti(tmp_path / "brats.nii.gz", brats)], 3) == (0, 1, 2, 4)


def test_running_out_of_memory_is_not_reported_as_a_bug():
    from medseg_monai.errors import is_expected

    assert is_expected(MemoryError())
    wrapped = RuntimeError("applying transform")
    wrapped.__cause__ = MemoryError("cannot allocate 8 GiB")
    assert is_expected(wrapped)
    assert not is_expected(TypeError("a bug"))
