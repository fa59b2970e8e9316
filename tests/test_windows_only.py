"""Windows-only preparation: resampling and normalising only the part of the network grid the windows read."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg_monai.inference.stitching import scan_starts, sliding_window_stitch, window_extent
from medseg_monai.inference.windows_only import prepare_windows_only
from medseg_monai.transforms.foreground import Foreground, map_foreground
from medseg_monai.transforms.resampling import lean_spacing, resample_extent, spacing_plan
from tests.helpers import SlabRecorder, ThresholdNet, threshold_predictor


def _image(shape=(50, 44, 30), seed=0) -> MetaTensor:
    data = torch.from_numpy(np.random.default_rng(seed).normal(0, 100, (1, *shape)).astype(np.float32))
    affine = torch.tensor([[1.2, 0, 0, -30.0], [0, 0.9, 0, 12.0], [0, 0, 2.5, 5.0], [0, 0, 0, 1]], dtype=torch.float64)
    return MetaTensor(data, affine=affine)


@pytest.mark.parametrize(
    "extent", [(slice(3, 20), slice(0, 31), slice(7, 40)), (slice(0, 40), slice(10, 11), slice(0, 1))]
)
def test_resample_extent_equals_that_part_of_the_whole_resampling(extent):
    image, pixdim = _image(), (1.5, 1.25, 1.75)
    whole = lean_spacing(image, pixdim)
    plan = spacing_plan(image, pixdim)
    assert plan.shape == tuple(whole.shape[1:])
    part = resample_extent(image.as_tensor(), plan, extent)
    assert torch.equal(part, whole.as_tensor()[(slice(None), *extent)])
    assert torch.equal(plan.meta(image)["affine"], whole.affine)


def test_window_extent_is_what_the_stitched_windows_read():
    spatial, roi, region = (70, 60, 20), (16, 16, 8), (slice(18, 52), slice(8, 42), slice(3, 12))
    read = torch.zeros(spatial, dtype=torch.bool)
    image = torch.arange(int(np.prod(spatial)), dtype=torch.float32).reshape(1, *spatial)

    def forward(x):
        for window in x:  # mark each window's voxels by their unique values
            read.view(-1)[window[0].flatten().long()] = True
        return ThresholdNet()(x)

    sliding_window_stitch(
        image, forward, SlabRecorder(), roi, overlap=0.5, sw_batch_size=4, mode="constant", axis=0, region=region
    )
    extent = window_extent(spatial, roi, 0.5, region)
    box = torch.zeros(spatial, dtype=torch.bool)
    box[extent] = True
    assert torch.equal(read, box)  # the windows read exactly the extent (they tile it)
    assert extent[0].start == max(s for s in scan_starts(70, 16, 0.5) if s <= 18)


def test_window_extent_of_an_image_smaller_than_a_window_is_the_image():
    assert window_extent((10, 40), (16, 16), 0.25, (slice(2, 5), slice(30, 35))) == (slice(0, 10), slice(24, 40))


def test_map_foreground_carries_the_box_and_mask_to_a_coarser_grid():
    mask = np.zeros((40, 30), dtype=bool)
    mask[10:20, 5:15] = True
    region = Foreground(slices=(slice(10, 20), slice(5, 15)), mask=mask, mode="ct")
    positions = [np.arange(20) * 2.0, np.arange(15) * 2.0]  # the grid samples every other source voxel
    grid = map_foreground(region, positions, window=(2, 2))
    assert grid.slices == (slice(5, 10), slice(3, 8))  # every grid index reading a box voxel
    assert grid.mask.shape == (20, 15) and grid.mask.sum() == 25 and grid.mask[5:10, 3:8].all()
    wide = map_foreground(region, positions, window=(8, 8))
    assert wide.slices[0].stop - wide.slices[0].start == 8
    assert (
        map_foreground(Foreground((slice(0, 40), slice(0, 30)), np.ones((40, 30), bool), "ct"), positions, (2, 2))
        is None
    )


def _ct_volume(tmp_path, shape=(90, 80, 36)):
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = ((x - 34) / 22.0) ** 2 + ((y - 42) / 18.0) ** 2 <= 1.0
    image = np.full(shape, -1000, dtype=np.int16)
    image[body] = 40
    image[28:40, 36:48, 8:28] = 200
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([0.8, 0.8, 2.5, 1.0])), path)
    return path


def test_predictor_windows_only_gives_the_same_image_where_windows_read_and_the_same_mask(tmp_path):
    path = _ct_volume(tmp_path)
    base = threshold_predictor(
        3, patch=(16, 16, 8), intensity="ct", ct_window=(-100.0, 300.0), target_spacing=(1.2, 1.2, 2.0)
    )
    whole = base.with_infer(windows_only=False, crop_margin_mm=4.0)
    lean = base.with_infer(windows_only=True, crop_margin_mm=4.0)
    a, b = whole.prepare(path), lean.prepare(path)
    assert a.image.shape == b.image.shape and np.array_equal(a.grid_affine, b.grid_affine)
    assert a.source_shape == b.source_shape == (90, 80, 36)
    spatial = tuple(b.image.shape[1:])
    extent = window_extent(spatial, lean.plan.window_size(spatial), lean.plan.overlap, b.region.slices)
    assert np.prod([e.stop - e.start for e in extent]) < 0.8 * np.prod(
        spatial
    )  # less than the whole grid was resampled
    inside = (slice(None), *extent)
    assert torch.equal(a.image[inside], b.image[inside])
    outside = torch.ones(spatial, dtype=torch.bool)
    outside[extent] = False
    assert (b.image[0][outside] == 0).all()
    mask_a, mask_b = whole.predict_prepared(a), lean.predict_prepared(b)
    np.testing.assert_array_equal(mask_a, mask_b)
    assert mask_b.dtype == np.uint8 and mask_b.shape == (90, 80, 36)
    assert mask_b[28:40, 36:48, 8:28].mean() > 0.95 and mask_b.sum() < 1.3 * 12 * 12 * 20  # the organ, nothing else


def test_windows_only_is_not_used_for_image_statistics_normalisation(tmp_path):
    path = _ct_volume(tmp_path)
    predictor = threshold_predictor(3, patch=(16, 16, 8), intensity="zscore", target_spacing=(1.2, 1.2, 2.0))
    loaded = predictor.preparation.loading({"image": str(path)})["image"]
    normalise = lambda x: predictor.preparation.normalisation({"image": x})["image"]  # noqa: E731
    pixdim = (1.2, 1.2, 2.0)
    assert prepare_windows_only(loaded, predictor.plan, predictor.config.data, pixdim, normalise) is None
    ct = threshold_predictor(3, patch=(16, 16, 8), intensity="ct", target_spacing=(1.2, 1.2, 2.0))
    assert prepare_windows_only(loaded, ct.plan, ct.config.data, pixdim, normalise) is not None
    off = ct.with_infer(windows_only=False)
    assert prepare_windows_only(loaded, off.plan, off.config.data, pixdim, normalise) is None
