"""Transform chains: output shapes, label values, channels, orientation, errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medseg_monai.config import DataConfig
from medseg_monai.keys import IMAGE, LABEL
from medseg_monai.transforms.chains import (
    IntensityWindowd,
    build_infer_transforms,
    build_train_transforms,
    build_val_transforms,
)


def write_png_pair(folder, name, image, mask):
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_mask.png")
    return {IMAGE: str(folder / f"{name}.png"), LABEL: str(folder / f"{name}_mask.png")}


def test_binary_255_masks_become_class_indices_and_image_scaled(tmp_path):
    image = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50).astype(np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 30:45] = 255
    item = write_png_pair(tmp_path, "a", image, mask)
    cfg = DataConfig(spatial_dims=2, patch_size=(32, 32), label_values=(0, 255), in_channels=1)
    out = build_val_transforms(cfg)(item)
    assert out[IMAGE].shape == (1, 40, 50) and out[LABEL].shape == (1, 40, 50)
    assert float(out[IMAGE].min()) == 0.0 and float(out[IMAGE].max()) == 1.0
    assert set(torch.unique(out[LABEL]).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(out[LABEL][0].numpy(), mask / 255)  # no transpose: (H, W) as stored


def test_train_chain_yields_patches_with_foreground(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[30:36, 40:46] = 2
    mask[2:10, 2:10] = 1
    item = write_png_pair(tmp_path, "b", np.full((40, 50), 90, np.uint8), mask)
    cfg = DataConfig(
        spatial_dims=2,
        patch_size=(48, 48),
        label_values=(0, 1, 2),
        in_channels=1,
        samples_per_image=3,
        foreground_ratio=1.0,
        augment=True,
    )
    patches = build_train_transforms(cfg)(item)
    assert len(patches) == 3
    for patch in patches:
        assert patch[IMAGE].shape == (1, 48, 48) and patch[LABEL].shape == (1, 48, 48)
        assert set(torch.unique(patch[LABEL]).tolist()) <= {0.0, 1.0, 2.0}
        assert bool((patch[LABEL] > 0).any())


def test_rgb_images_keep_three_channels_and_gray_is_matched(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    item = write_png_pair(tmp_path, "c", rgb, np.zeros((20, 30), np.uint8))
    cfg = DataConfig(spatial_dims=2, patch_size=(16, 16), label_values=(0, 255), in_channels=3)
    assert build_infer_transforms(cfg)({IMAGE: item[IMAGE]})[IMAGE].shape == (3, 20, 30)
    gray_item = write_png_pair(tmp_path, "d", rgb[..., 0], np.zeros((20, 30), np.uint8))
    assert build_infer_transforms(cfg)({IMAGE: gray_item[IMAGE]})[IMAGE].shape == (3, 20, 30)


def test_unknown_mask_value_names_the_file(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[0, 0] = 128
    item = write_png_pair(tmp_path, "e", np.zeros((8, 8), np.uint8), mask)
    cfg = DataConfig(spatial_dims=2, patch_size=(8, 8), label_values=(0, 255), in_channels=1)
    with pytest.raises(RuntimeError, match="applying transform") as info:  # MONAI's Compose wraps the transform's error
        build_val_transforms(cfg)(item)
    root = info.value
    while root.__cause__ is not None:
        root = root.__cause__
    assert isinstance(root, ValueError)
    assert str(root).endswith("e_mask.png: mask values [128] are not in label_values [0, 255]")


def test_volume_is_reoriented_resampled_and_zscored(tmp_path):
    volume = np.random.default_rng(1).normal(100, 20, (20, 16, 10)).astype(np.float32)
    label = np.zeros((20, 16, 10), np.uint8)
    label[5:10, 4:8, 2:6] = 1
    affine = np.diag([-1.0, 1.0, 3.0, 1.0])  # LAS, 3 mm slices
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "v.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "l.nii.gz")
    cfg = DataConfig(
        spatial_dims=3,
        patch_size=(16, 16, 16),
        label_values=(0, 1),
        in_channels=1,
        target_spacing=(1.0, 1.0, 1.5),
        intensity="zscore",
    )
    out = build_val_transforms(cfg)({IMAGE: str(tmp_path / "v.nii.gz"), LABEL: str(tmp_path / "l.nii.gz")})
    assert out[IMAGE].shape == (1, 20, 16, 19) and out[LABEL].shape == (1, 20, 16, 19)  # 9 gaps x 3 mm / 1.5 mm + 1
    assert torch.allclose(
        out[IMAGE].affine[:3, :3].diagonal().abs(), torch.tensor([1.0, 1.0, 1.5], dtype=out[IMAGE].affine.dtype)
    )
    assert out[IMAGE].affine[0, 0] > 0  # now RAS
    assert abs(float(out[IMAGE].mean())) < 0.1 and abs(float(out[IMAGE].std()) - 1) < 0.1
    assert set(torch.unique(out[LABEL]).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("mode", ["ct", "percentile"])
def test_ct_window_and_percentile_modes_bound_outliers(tmp_path, mode):
    volume = np.random.default_rng(2).normal(40, 10, (12, 12, 8)).astype(np.float32)
    volume[0, 0, 0] = 3_000_000  # an outlier like the mixed-dtype hippocampus cases
    volume[1, 1, 1] = -1000
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii.gz")
    cfg = DataConfig(spatial_dims=3, patch_size=(8, 8, 8), in_channels=1, intensity=mode, target_spacing=())
    image = build_infer_transforms(cfg)({IMAGE: str(tmp_path / "v.nii.gz")})[IMAGE]
    assert image.shape == (1, 12, 12, 8)
    assert float(image.max()) <= (1.0 if mode == "ct" else 20.0)


def test_intensity_window_equals_monai_scale_intensity_range_and_keeps_metadata():
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRanged

    rng = np.random.default_rng(0)
    affine = torch.diag(torch.tensor([0.8, 0.8, 2.5, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.from_numpy(rng.normal(40, 400, (1, 12, 11, 9)).astype(np.float32)), affine=affine)
    image.meta["filename_or_obj"] = "ct.nii.gz"
    ours = IntensityWindowd(IMAGE, low=-57, high=164)({IMAGE: image})[IMAGE]
    monai = ScaleIntensityRanged(IMAGE, a_min=-57, a_max=164, b_min=0.0, b_max=1.0, clip=True)({IMAGE: image})[IMAGE]
    assert torch.equal(ours.as_tensor(), monai.as_tensor()) and ours.dtype == torch.float32
    assert torch.equal(ours.affine, affine) and ours.meta["filename_or_obj"] == "ct.nii.gz"
    assert float(image.min()) < -57  # the input is left as it was
    integers = IntensityWindowd(IMAGE, low=0, high=10)({IMAGE: torch.arange(-5, 16, dtype=torch.int16)[None]})[IMAGE]
    assert integers.dtype == torch.float32 and integers[0, 5].item() == 0.0 and integers[0, 10].item() == 0.5
    with pytest.raises(ValueError, match=r"high > low, got \(5, 5\)"):
        IntensityWindowd(IMAGE, low=5, high=5)


@pytest.mark.parametrize("flip_axes, rotate90, may_turn_upside_down", [(None, True, True), ((1,), False, False)])
def test_augmentation_keeps_the_axes_it_is_told_to(tmp_path, flip_axes, rotate90, may_turn_upside_down):
    mask = np.zeros((32, 32), np.uint8)
    mask[2:10, 2:10] = 255  # top-left corner
    item = write_png_pair(tmp_path, "corner", np.full((32, 32), 90, np.uint8), mask)
    cfg = DataConfig(
        spatial_dims=2,
        patch_size=(32, 32),
        label_values=(0, 255),
        in_channels=1,
        samples_per_image=1,
        foreground_ratio=1.0,
        flip_axes=flip_axes,
        rotate90=rotate90,
    )
    chain = build_train_transforms(cfg).set_random_state(seed=0)
    rows, cols = [], []
    for _ in range(40):
        label = chain(item)[0][LABEL][0].numpy()
        ys, xs = np.nonzero(label > 0.5)
        rows.append(ys.mean())
        cols.append(xs.mean())
    assert any(c > 16 for c in cols) and any(c < 16 for c in cols)  # left-right flips in both cases
    assert any(r > 16 for r in rows) == may_turn_upside_down


def test_flip_axes_must_be_spatial_axes():
    with pytest.raises(ValueError, match=r"flip_axes must hold distinct spatial axes in \[0, 2\), got \(2,\)"):
        DataConfig(spatial_dims=2, flip_axes=(2,))
