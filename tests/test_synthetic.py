"""Synthetic data: geometry, intensities, determinism and the files written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medseg_monai.data.synthetic import generate_dataset
from medseg_monai.data.synthetic_2d import make_synthetic_2d, synth_image_2d
from medseg_monai.data.synthetic_3d import make_synthetic_3d, synth_volume_3d


def _lesion_strictly_inside(label: np.ndarray) -> bool:
    """Every lesion voxel and all its neighbours (8 or 26) are organ or lesion."""
    inner = ndimage.binary_erosion(label > 0, structure=np.ones((3,) * label.ndim), border_value=0)
    return bool(np.all(inner[label == 2]))


@pytest.mark.parametrize("seed", range(20))
def test_image_2d_shapes_values_and_geometry(seed: int) -> None:
    image, label = synth_image_2d((96, 128), np.random.default_rng(seed))
    assert image.shape == label.shape == (96, 128)
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(np.unique(label)) == {0, 1, 2}
    assert _lesion_strictly_inside(label)
    # organ well inside the field of view, lesion not a speck
    rows, cols = np.nonzero(label)
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < 95 and cols.max() < 127
    assert (label == 2).sum() >= 45  # at least a disc of radius 4
    # contrast: organ clearly above background, lesion clearly above organ
    means = [float(image[label == k].mean()) for k in range(3)]
    assert means[1] - means[0] > 0.25 and means[2] - means[1] > 0.25


def test_image_2d_is_seeded_and_rgb() -> None:
    a_img, a_lab = synth_image_2d((64, 64), np.random.default_rng(3))
    b_img, b_lab = synth_image_2d((64, 64), 3)
    c_img, _ = synth_image_2d((64, 64), 4)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    rgb, label = synth_image_2d((64, 64), 3, channels=3)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.float32 and label.shape == (64, 64)
    assert not np.allclose(rgb[..., 0], rgb[..., 1])


@pytest.mark.parametrize("modality", ["mr", "ct"])
def test_volume_3d(modality: str) -> None:
    for seed in range(4):
        image, label = synth_volume_3d((48, 40, 32), np.random.default_rng(seed), modality=modality)
        assert image.shape == label.shape == (48, 40, 32)
        assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1, 2}
        assert _lesion_strictly_inside(label)
        organ, lesion = image[label == 1].mean(), image[label == 2].mean()
        if modality == "mr":
            assert image.dtype == np.float32
            assert image.min() >= 0 and image.max() < 1300
            assert lesion - organ > 200
        else:
            assert image.dtype == np.int16
            assert image.min() >= -1024 and image.max() < 250
            assert 50 < organ < 90 and 95 < lesion < 155
            assert np.median(image[0, 0]) < -900  # air in the corner
            body = image[label == 0]
            assert np.any((body > -100) & (body < 100))


def test_volume_3d_ct_sized_volume_is_fast_enough() -> None:
    import time

    start = time.perf_counter()
    image, label = synth_volume_3d((256, 256, 100), 0, modality="ct")
    assert time.perf_counter() - start < 5.0
    assert image.dtype == np.int16 and (label == 2).any()


def test_make_synthetic_2d_writes_flat_png_pairs(tmp_path) -> None:
    items = make_synthetic_2d(tmp_path / "d2", n_cases=3, shape=(64, 48), seed=1)
    assert [item["name"] for item in items] == ["case_000", "case_001", "case_002"]
    assert sorted(p.name for p in (tmp_path / "d2").iterdir()) == [
        f"case_00{i}{suffix}.png" for i in range(3) for suffix in ("", "_mask")
    ]
    image = np.asarray(Image.open(items[0]["image"]))
    mask = np.asarray(Image.open(items[0]["label"]))
    assert image.shape == mask.shape == (64, 48)
    assert image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1, 2}
    assert image.max() > 150 and image.min() < 60

    again = make_synthetic_2d(tmp_path / "again", n_cases=2, shape=(64, 48), seed=1)
    assert items[1]["image"].read_bytes() == again[1]["image"].read_bytes()

    rgb = make_synthetic_2d(tmp_path / "rgb", n_cases=1, shape=(32, 32), rgb=True)
    with Image.open(rgb[0]["image"]) as img:
        assert img.mode == "RGB" and img.size == (32, 32)


def test_make_synthetic_3d_writes_msd_nifti_with_real_affine(tmp_path) -> None:
    spacing = (1.2, 0.9, 2.5)
    items = make_synthetic_3d(tmp_path, n_cases=3, shape=(32, 32, 16), spacing=spacing, seed=2)
    assert [item["image"].relative_to(tmp_path).as_posix() for item in items] == [
        f"imagesTr/case_00{i}.nii.gz" for i in range(3)
    ]
    codes = []
    for item in items:
        image, label = nib.load(item["image"]), nib.load(item["label"])
        assert image.shape == label.shape == (32, 32, 16)
        assert image.get_data_dtype() == np.float32 and label.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(label.dataobj))) == {0, 1, 2}
        np.testing.assert_allclose(image.affine, label.affine)
        assert not np.allclose(image.affine, np.eye(4))
        assert np.any(np.abs(image.affine[:3, 3]) > 1e-3)
        np.testing.assert_allclose(image.header.get_zooms(), spacing, rtol=1e-5)
        linear = image.affine[:3, :3] / np.asarray(spacing)
        assert np.count_nonzero(np.abs(linear) > 1e-6) > 3  # oblique, not axis-aligned
        for img in (image, label):
            assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
            np.testing.assert_allclose(img.get_qform(), img.get_sform(), atol=1e-4)
        codes.append("".join(nib.aff2axcodes(image.affine)))
    assert "LAS" in codes and "RAS" in codes

    ct = make_synthetic_3d(tmp_path / "ct", n_cases=1, shape=(32, 32, 16), modality="ct")
    ct_img = nib.load(ct[0]["image"])
    assert ct_img.get_data_dtype() == np.int16
    assert np.asarray(ct_img.dataobj).min() <= -900


def test_generate_dataset_dispatches(tmp_path) -> None:
    out = generate_dataset(tmp_path / "two", dims=2, n_cases=2, shape=(32, 32), seed=0)
    assert out == tmp_path / "two" and len(list(out.glob("*_mask.png"))) == 2
    out = generate_dataset(tmp_path / "three", dims=3, n_cases=1, shape=(24, 24, 16), modality="ct")
    assert (out / "labelsTr" / "case_000.nii.gz").is_file()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dims": 4}, "dims"),
        ({"dims": 2, "n_cases": 0}, "n_cases"),
        ({"dims": 2, "shape": (32, 32, 32)}, "shape"),
        ({"dims": 3, "shape": (32, 32)}, "shape"),
        ({"dims": 2, "shape": (0, 32)}, "shape"),
        ({"dims": 3, "shape": (32, 32, 16), "modality": "pet"}, "modality"),
        ({"dims": 3, "shape": (32, 32, 16), "spacing": (1.0, -1.0, 1.0)}, "spacing"),
    ],
)
def test_argument_errors(tmp_path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path, n_cases=kwargs.pop("n_cases", 1), **kwargs)
    assert not any(tmp_path.rglob("*.png")) and not any(tmp_path.rglob("*.nii.gz"))


def test_direct_argument_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        synth_image_2d((8, 8), 0)
    with pytest.raises(ValueError, match="modality"):
        synth_volume_3d((32, 32, 16), 0, modality="xray")
