"""2D and 2.5D networks on volumes: context stacking, slice patches, slice-wise prediction, geometry of the masks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, RuntimeConfig
from medseg_monai.data import resolve_data_config
from medseg_monai.errors import ConfigError
from medseg_monai.inference import Predictor
from medseg_monai.keys import IMAGE, LABEL
from medseg_monai.networks import SliceWindowNetwork, build_network
from medseg_monai.training.trainer import train
from medseg_monai.transforms import SlicesToChannelsd, stack_context
from medseg_monai.transforms.chains import build_train_transforms, build_val_transforms
from tests.helpers import tiny_config
from tests.test_predict_batch import assert_same_geometry


def test_stack_context_orders_channels_and_repeats_the_end_slices() -> None:
    volume = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)  # (C, X, Y, Z)
    stacked = stack_context(volume, slice_axis=2, context=1)
    assert stacked.shape == (6, 2, 3, 4)
    for c in range(2):
        torch.testing.assert_close(stacked[3 * c + 1], volume[c])  # the slice itself in the middle
        torch.testing.assert_close(stacked[3 * c][..., 1:], volume[c][..., :-1])  # the slice before
        torch.testing.assert_close(stacked[3 * c + 2][..., :-1], volume[c][..., 1:])  # the slice after
        torch.testing.assert_close(stacked[3 * c][..., 0], volume[c][..., 0])  # the first slice repeats
        torch.testing.assert_close(stacked[3 * c + 2][..., -1], volume[c][..., -1])
    assert stack_context(volume, 0, 0) is volume


def test_slices_to_channels_keeps_the_middle_label_and_in_plane_spacing() -> None:
    affine = torch.diag(torch.tensor([0.7, 0.8, 3.0, 1.0], dtype=torch.float64))
    image = MetaTensor(
        torch.arange(60, dtype=torch.float32).reshape(1, 4, 3, 5), affine=affine
    )  # 3 slices across axis 1
    label = MetaTensor((torch.arange(60).reshape(1, 4, 3, 5) % 2).float(), affine=image.affine)
    out = SlicesToChannelsd(slice_axis=1)({IMAGE: image, LABEL: label})
    assert out[IMAGE].shape == (3, 4, 5) and out[LABEL].shape == (1, 4, 5)
    torch.testing.assert_close(out[IMAGE][1], image[0, :, 1])
    torch.testing.assert_close(out[LABEL][0], label[0, :, 1])
    np.testing.assert_allclose(np.diag(np.asarray(out[IMAGE].affine))[:2], [0.7, 3.0])


def _sliced_data(data_dir: Path, context: int, **changes) -> DataConfig:
    data = DataConfig(
        data_dir=str(data_dir),
        spatial_dims=2,
        patch_size=(24, 24),
        context_slices=context,
        in_channels=1,
        label_values=(0, 1, 2),
        intensity="minmax",
        **changes,
    )
    return data


def test_training_patches_of_a_volume_are_2d_with_context_channels(synth_3d: Path) -> None:
    pair = {
        IMAGE: str(synth_3d / "imagesTr" / "case_000.nii.gz"),
        LABEL: str(synth_3d / "labelsTr" / "case_000.nii.gz"),
    }
    data = resolve_data_config(_sliced_data(synth_3d, 2, augment=False, samples_per_image=6), [pair])
    assert data.slice_axis == 2 and data.image_dims == 3 and len(data.target_spacing) == 3
    assert data.network_in_channels == 5
    patches = build_train_transforms(data)(pair)
    assert len(patches) == 6
    volume = build_val_transforms(dataclasses.replace(data, context_slices=0))(pair)
    for patch in patches:
        assert patch[IMAGE].shape == (5, 24, 24) and patch[LABEL].shape == (1, 24, 24)
        # the middle channel is a slice of the preprocessed volume whose labels the patch carries
        middle = patch[IMAGE][2].numpy()
        assert np.abs(middle).sum() > 0
        matches = [
            z
            for z in range(volume[IMAGE].shape[3])
            if _holds(volume[IMAGE][0, :, :, z].numpy(), middle)
            and _holds(volume[LABEL][0, :, :, z].numpy(), patch[LABEL][0].numpy())
        ]
        assert matches, "a patch's middle channel and label come from one slice of the volume"


def _holds(plane: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` is a crop of ``plane`` (zero-padded where the plane is smaller)."""
    h, w = patch.shape
    padded = np.pad(plane, ((h, h), (w, w)))
    for x in range(padded.shape[0] - h + 1):
        for y in range(padded.shape[1] - w + 1):
            if np.array_equal(padded[x : x + h, y : y + w], patch):
                return True
    return False


def test_validation_volumes_carry_stacked_context(synth_3d: Path) -> None:
    pair = {
        IMAGE: str(synth_3d / "imagesTr" / "case_001.nii.gz"),
        LABEL: str(synth_3d / "labelsTr" / "case_001.nii.gz"),
    }
    data = resolve_data_config(_sliced_data(synth_3d, 1), [pair])
    out = build_val_transforms(data)(pair)
    assert out[IMAGE].shape[0] == 3 and out[LABEL].shape[0] == 1
    assert out[IMAGE].shape[1:] == out[LABEL].shape[1:]


def _random_sliced_predictor(context: int, slice_axis: int = 2, tta: bool = False) -> Predictor:
    torch.manual_seed(0)
    config = RunConfig(
        data=DataConfig(
            spatial_dims=2,
            slice_axis=slice_axis,
            context_slices=context,
            patch_size=(32, 32),
            in_channels=1,
            label_values=(0, 1, 2),
            intensity="minmax",
            target_spacing=(),
        ),
        model=ModelConfig(name="unet", options={"channels": [8, 16], "strides": [2], "num_res_units": 1}),
        infer=InferConfig(overlap=0.5, sw_batch_size=3, tta_flips=tta, foreground_crop="none"),
        runtime=RuntimeConfig(device="cpu", precision="fp32"),
    )
    return Predictor(build_network(config).eval(), config)


@pytest.mark.parametrize("slice_axis", [0, 2])
def test_slice_wise_prediction_equals_the_2d_network_on_each_slice(slice_axis: int) -> None:
    predictor = _random_sliced_predictor(context=1, slice_axis=slice_axis)
    image = torch.rand(1, 20, 18, 11)
    probs = predictor.predict_probabilities(image[None])[0]  # (K, 20, 18, 11)
    stacked = stack_context(image, slice_axis, 1)
    with torch.inference_mode():
        for s in range(image.shape[slice_axis + 1]):
            plane = stacked.select(slice_axis + 1, s)  # (3, a, b), smaller than the 32x32 window: padded as MONAI does
            a, b = plane.shape[1:]
            pad = (32 - b) // 2, 32 - b - (32 - b) // 2, (32 - a) // 2, 32 - a - (32 - a) // 2
            logits = predictor.network(torch.nn.functional.pad(plane[None], pad))[0][
                :, pad[2] : pad[2] + a, pad[0] : pad[0] + b
            ]
            torch.testing.assert_close(probs.select(slice_axis + 1, s), torch.softmax(logits, 0), atol=1e-5, rtol=1e-4)
    labels = predictor.predict_labels(image)
    assert labels.shape == (1, 20, 18, 11) and labels.dtype == torch.uint8
    torch.testing.assert_close(labels[0].long(), probs.argmax(0))


def test_flips_of_a_2d_network_on_volumes_are_in_plane() -> None:
    predictor = _random_sliced_predictor(context=0, slice_axis=0, tta=True)
    assert sorted(predictor.plan.flips) == sorted([(), (3,), (4,), (3, 4)])
    network = SliceWindowNetwork(torch.nn.Conv2d(2, 4, 1), slice_axis=1)
    assert network(torch.rand(3, 2, 5, 6, 7)).shape == (3, 4, 5, 6, 7)


@pytest.mark.parametrize(("network", "context"), [("deeplabv3", 0), ("unet", 2)])
def test_2d_networks_trained_on_volumes_write_masks_with_the_source_geometry(
    synth_3d: Path, tmp_path: Path, network: str, context: int
) -> None:
    config = tiny_config(synth_3d, 2, epochs=1, network=network, context_slices=context)
    run = tmp_path / network
    train(config, run)
    predictor = Predictor.from_run(run)
    assert predictor.config.data.slice_axis == 2 and predictor.config.data.context_slices == context
    source = synth_3d / "imagesTr" / "case_001.nii.gz"  # oblique and flipped in x, anisotropic
    written = predictor.predict_file(source, tmp_path / "mask.nii.gz")
    assert_same_geometry(source, written)
    mask = np.asarray(nib.load(str(written)).dataobj)
    assert mask.shape == nib.load(str(source)).shape and set(np.unique(mask)) <= {0, 1, 2}


def test_a_2_5d_model_segments_a_real_volume_in_its_geometry(shared_data_dir: Path, tmp_path: Path) -> None:
    images = sorted((shared_data_dir / "msd_hippocampus" / "imagesTr").glob("*.nii.gz"))
    if not images:
        pytest.skip("msd_hippocampus is not in the real data folder")
    predictor = _random_sliced_predictor(context=2)
    predictor = Predictor(
        predictor.network,
        dataclasses.replace(
            predictor.config,
            data=dataclasses.replace(predictor.config.data, target_spacing=(1.0, 1.0, 1.0), intensity="percentile"),
        ),
    )
    written = predictor.predict_file(images[0], tmp_path / "hippocampus.nii.gz")
    assert_same_geometry(images[0], written)


def test_slicing_options_that_cannot_apply_are_config_errors(synth_2d: Path) -> None:
    with pytest.raises(ConfigError, match="set data.spatial_dims=2"):
        DataConfig(spatial_dims=3, context_slices=1)
    with pytest.raises(ConfigError, match="context_slices must be >= 0"):
        DataConfig(spatial_dims=2, context_slices=-1)
    with pytest.raises(ConfigError, match="slice_axis must be 0, 1 or 2"):
        DataConfig(spatial_dims=2, slice_axis=3)
    pair = {IMAGE: str(synth_2d / "case_000.png"), LABEL: str(synth_2d / "case_000_mask.png")}
    with pytest.raises(ConfigError, match="need volumes; the training images are 2D"):
        resolve_data_config(DataConfig(spatial_dims=2, context_slices=1), [pair])


def test_a_2d_network_takes_three_spacings_for_volumes_and_two_for_images(synth_3d: Path, synth_2d: Path) -> None:
    volume = {
        IMAGE: str(synth_3d / "imagesTr" / "case_000.nii.gz"),
        LABEL: str(synth_3d / "labelsTr" / "case_000.nii.gz"),
    }
    data = resolve_data_config(_sliced_data(synth_3d, 0, target_spacing=(1.0, 1.0, 2.5)), [volume])
    assert data.slice_axis == 2 and data.target_spacing == (1.0, 1.0, 2.5)
    image = {IMAGE: str(synth_2d / "case_000.png"), LABEL: str(synth_2d / "case_000_mask.png")}
    with pytest.raises(ConfigError, match="target_spacing must hold 2 values for 2D images"):
        resolve_data_config(DataConfig(spatial_dims=2, target_spacing=(1.0, 1.0, 2.5)), [image])
