"""Cases of several images, one per channel: layouts, training, prediction of grouped cases, and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg_monai.batch import MANIFEST_NAME
from medseg_monai.config import DataConfig, RunConfig
from medseg_monai.data.channels import ChannelCase, dataset_channel_names
from medseg_monai.data.datalist import discover_pairs, load_datalist
from medseg_monai.data.inputs import collect_inputs
from medseg_monai.data.properties import resolve_data_config
from medseg_monai.data.synthetic_channels import CHANNEL_NAMES, make_synthetic_two_channel, synth_two_channel_3d
from medseg_monai.errors import InputError, root_cause
from medseg_monai.inference import Predictor
from medseg_monai.transforms.chains import build_infer_transforms, build_val_transforms
from tests.helpers import predict_batch, tiny_config
from tests.test_predict_batch import assert_same_geometry

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def two_channel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_channel")
    make_synthetic_two_channel(root, n_cases=4, shape=SHAPE, seed=5)
    return root


@pytest.fixture(scope="module")
def run_two_channel(two_channel, tmp_path_factory) -> Path:
    from medseg_monai.training.trainer import train

    result = train(tiny_config(two_channel, 3, epochs=1), tmp_path_factory.mktemp("run_two_channel"))
    return Path(result.run_dir)


@pytest.fixture(scope="module")
def predictor(run_two_channel) -> Predictor:
    return Predictor.from_run(run_two_channel, runtime={"device": "cpu"})


def _copy_case(dataset: Path, name: str, folder: Path, channels=(0, 1)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in channels:
        shutil.copy(dataset / "imagesTr" / f"{name}_{k:04d}.nii.gz", folder)


def _one_line_error(excinfo) -> str:
    """The one-line message of the input error raised (through MONAI's transform wrappers)."""
    error = root_cause(excinfo.value)
    assert isinstance(error, InputError), repr(excinfo.value)
    message = str(error)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- data
def test_synthetic_channels_each_show_part_of_the_scene():
    t2, adc, label = synth_two_channel_3d((32, 32, 20), rng=3)
    again = synth_two_channel_3d((32, 32, 20), rng=3)
    np.testing.assert_array_equal(t2, again[0])
    np.testing.assert_array_equal(adc, again[1])
    background, organ, lesion = (label == 0), (label == 1), (label == 2)
    assert organ.any() and lesion.any()
    # channel 0: organ (and lesion) bright, lesion like the organ; channel 1: lesion bright, organ like the background
    assert t2[organ].mean() - t2[background].mean() > 200
    assert abs(t2[lesion].mean() - t2[organ].mean()) < 60
    assert adc[lesion].mean() - adc[organ].mean() > 300
    assert abs(adc[organ].mean() - adc[background].mean()) < 60


def test_nnunet_layout_gives_channel_lists_and_names(two_channel: Path):
    items = discover_pairs(two_channel)
    assert [item["name"] for item in items] == ["case_000", "case_001", "case_002", "case_003"]
    assert [Path(p).name for p in items[1]["image"]] == ["case_001_0000.nii.gz", "case_001_0001.nii.gz"]
    assert dataset_channel_names(two_channel) == CHANNEL_NAMES
    cfg = resolve_data_config(DataConfig(data_dir=str(two_channel), spatial_dims=3, patch_size=(16, 16, 16)), items)
    assert cfg.in_channels == 2 and cfg.channel_names == ("T2", "ADC")
    data = build_val_transforms(cfg)(items[0])
    assert tuple(data["image"].shape) == (2, *SHAPE) and tuple(data["label"].shape) == (1, *SHAPE)


def test_msd_modality_names_a_4d_dataset(tmp_path: Path):
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    for name in ("p1", "p2"):
        (tmp_path / "imagesTr").mkdir(exist_ok=True)
        (tmp_path / "labelsTr").mkdir(exist_ok=True)
        volume = np.random.default_rng(0).random((*SHAPE, 2)).astype(np.float32)
        nib.Nifti1Image(volume, affine).to_filename(str(tmp_path / "imagesTr" / f"{name}.nii.gz"))
        mask = np.zeros(SHAPE, np.uint8)
        mask[5:10, 5:10, 4:8] = 1
        nib.Nifti1Image(mask, affine).to_filename(str(tmp_path / "labelsTr" / f"{name}.nii.gz"))
    training = [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in ("p1", "p2")]
    (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": "T2", "1": "ADC"}, "training": training}))
    items = discover_pairs(tmp_path)
    cfg = resolve_data_config(DataConfig(data_dir=str(tmp_path), spatial_dims=3, patch_size=(16, 16, 16)), items)
    assert cfg.in_channels == 2 and cfg.channel_names == ("T2", "ADC")
    assert tuple(build_val_transforms(cfg)(items[0])["image"].shape) == (2, *SHAPE)


def test_minmax_scales_each_separate_channel_but_rgb_jointly():
    image = torch.stack([torch.linspace(0, 10, 256), torch.linspace(100, 4000, 256)]).reshape(2, 16, 16).numpy()
    separate = DataConfig(
        spatial_dims=2,
        patch_size=(16, 16),
        in_channels=2,
        channel_names=("a", "b"),
        intensity="minmax",
        label_values=(0, 1),
    )
    joint = DataConfig(spatial_dims=2, patch_size=(16, 16), in_channels=2, intensity="minmax", label_values=(0, 1))
    from monai.data import MetaTensor

    for cfg, expected_max0 in ((separate, 1.0), (joint, 10 / 4000)):
        steps = build_infer_transforms(cfg).transforms[3:]  # after loading: channels and intensity
        data = {"image": MetaTensor(torch.as_tensor(image))}
        for step in steps:
            data = step(data)
        out = data["image"]
        assert float(out[1].max()) == pytest.approx(1.0) and float(out[0].min()) == pytest.approx(0.0)
        assert float(out[0].max()) == pytest.approx(expected_max0, rel=1e-4)


def test_a_case_lacking_a_channel_at_train_time_is_one_line(tmp_path: Path):
    make_synthetic_two_channel(tmp_path, n_cases=3, shape=SHAPE, seed=1)
    (tmp_path / "imagesTr" / "case_001_0001.nii.gz").unlink()
    with pytest.raises(InputError) as excinfo:
        discover_pairs(tmp_path)
    assert _one_line_error(excinfo) == (
        f"{tmp_path / 'imagesTr' / 'case_001'}: channel 1 (ADC) missing: case_001_0001.nii.gz not found"
    )


def test_a_datalist_with_several_images_per_case(two_channel: Path, tmp_path: Path):
    training = [
        {
            "image": [
                f"{two_channel}/imagesTr/case_{i:03d}_0000.nii.gz",
                f"{two_channel}/imagesTr/case_{i:03d}_0001.nii.gz",
            ],
            "label": f"{two_channel}/labelsTr/case_{i:03d}.nii.gz",
        }
        for i in range(3)
    ]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"training": training, "channel_names": {"0": "T2w", "1": "DWI"}}))
    items = load_datalist(listing)
    assert [item["name"] for item in items] == ["case_000", "case_001", "case_002"]
    cfg = resolve_data_config(DataConfig(datalist=str(listing), spatial_dims=3, patch_size=(16, 16, 16)), items)
    assert cfg.in_channels == 2 and cfg.channel_names == ("T2w", "DWI")
    # without names in the datalist: default names; a case of another channel count is refused
    listing.write_text(
        json.dumps(
            {
                "training": training
                + [{"image": [training[0]["image"][0]], "label": training[0]["label"], "name": "short"}]
            }
        )
    )
    items = load_datalist(listing)
    with pytest.raises(
        InputError, match=r"case short has 1 image file\(s\) \(case_000_0000\.nii\.gz\) but case_000 has 2"
    ):
        resolve_data_config(DataConfig(datalist=str(listing), spatial_dims=3, patch_size=(16, 16, 16)), items)
    cfg = resolve_data_config(DataConfig(datalist=str(listing), spatial_dims=3, patch_size=(16, 16, 16)), items[:3])
    assert cfg.channel_names == ("channel_0", "channel_1")


# ---------------------------------------------------------------------------------------------- prediction inputs
def test_collect_inputs_groups_nnunet_channel_files(tmp_path: Path):
    for name in ("a_0000", "a_0001", "b_0000", "c_0000", "c_0002", "plain"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"")
    found = collect_inputs(tmp_path)
    assert [getattr(f, "name", None) for f in found] == ["a", "b", "c", "plain.nii.gz"]
    a, b, c = found[:3]
    assert isinstance(a, ChannelCase) and [p.name for p in a.channels] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert [p.name for p in b.channels] == ["b_0000.nii.gz"]
    assert [p.name for p in c.channels] == ["c_0000.nii.gz", "c_0001.nii.gz", "c_0002.nii.gz"]  # the gap stays visible
    assert not c.channels[1].exists() and found[3] == tmp_path / "plain.nii.gz"


def test_single_channel_nnunet_folder_is_not_grouped(tmp_path: Path):
    for name in ("a_0000", "b_0000"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"")
    assert collect_inputs(tmp_path) == [tmp_path / "a_0000.nii.gz", tmp_path / "b_0000.nii.gz"]


def test_csv_list_with_a_column_per_channel(tmp_path: Path):
    for name in ("x_t2", "x_adc", "y_t2", "y_adc"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"")
    listing = tmp_path / "cases.csv"
    listing.write_text("name,image_0,image_1\npat_x,x_t2.nii.gz,x_adc.nii.gz\n,y_t2.nii.gz,y_adc.nii.gz\n")
    found = collect_inputs(listing)
    assert [(c.name, [p.name for p in c.channels]) for c in found] == [
        ("pat_x", ["x_t2.nii.gz", "x_adc.nii.gz"]),
        ("y_t2", ["y_t2.nii.gz", "y_adc.nii.gz"]),
    ]
    listing.write_text("image_0,image_1\nx_t2.nii.gz,gone.nii.gz\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.nii\.gz \(listed in .*cases\.csv\)"):
        collect_inputs(listing)


# ---------------------------------------------------------------------------------------------- train and predict
def test_two_channel_run_saves_its_channels(run_two_channel: Path):
    config = RunConfig.load(run_two_channel / "config.json")
    assert config.data.in_channels == 2 and config.data.channel_names == ("T2", "ADC")
    assert config.data.network_in_channels == 2
    splits = json.loads((run_two_channel / "splits.json").read_text())
    assert all(len(item["image"]) == 2 for item in splits["training"] + splits["validation"])


def test_predicts_a_folder_of_grouped_cases_in_channel_0_geometry(
    predictor: Predictor, two_channel: Path, tmp_path: Path
):
    inputs = tmp_path / "in"
    for name in ("case_001", "case_002"):
        _copy_case(two_channel, name, inputs)
    results = predict_batch(predictor, inputs, tmp_path / "out")
    assert [r.status for r in results] == ["written", "written"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["case_001.nii.gz", "case_002.nii.gz"]
    for name in ("case_001", "case_002"):
        output = tmp_path / "out" / f"{name}.nii.gz"
        assert_same_geometry(inputs / f"{name}_0000.nii.gz", output)
        assert nib.load(str(output)).shape == SHAPE
        assert set(np.unique(np.asarray(nib.load(str(output)).dataobj))) <= {0, 1, 2}
    records = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())["cases"]
    assert records[0]["input"].endswith("case_001_0000.nii.gz")
    assert [Path(p).name for p in records[0]["channels"]] == ["case_001_0000.nii.gz", "case_001_0001.nii.gz"]
    # the same case given as a list of files to the Python API gives the same mask; whole-image stitching reads it too
    files = [inputs / "case_001_0000.nii.gz", inputs / "case_001_0001.nii.gz"]
    written = np.asarray(nib.load(str(tmp_path / "out" / "case_001.nii.gz")).dataobj)
    np.testing.assert_array_equal(predictor.predict_image(files), written)
    assert predictor.with_infer(stitching="full").predict_image(files).shape == SHAPE
    # a rerun keeps the complete masks
    assert [r.status for r in predict_batch(predictor, inputs, tmp_path / "out")] == ["skipped", "skipped"]


def test_a_case_missing_a_channel_fails_alone(predictor: Predictor, two_channel: Path, tmp_path: Path):
    inputs = tmp_path / "in"
    _copy_case(two_channel, "case_000", inputs)
    _copy_case(two_channel, "case_003", inputs, channels=(0,))
    results = predict_batch(predictor, inputs, tmp_path / "out")
    assert [r.status for r in results] == ["written", "failed"]
    assert results[1].error == f"{inputs / 'case_003'}: channel 1 (ADC) missing: case_003_0001.nii.gz not found"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["case_000.nii.gz"]


def test_a_single_file_to_a_two_channel_model_is_refused(predictor: Predictor, two_channel: Path):
    single = two_channel / "imagesTr" / "case_000_0000.nii.gz"
    with pytest.raises(InputError) as excinfo:
        predictor.predict_image(single)
    message = _one_line_error(excinfo)
    assert message.startswith(f"{single}: channel 1 (ADC) missing: the model takes 2 channel(s): 0 (T2), 1 (ADC)")
    with pytest.raises(RuntimeError) as excinfo:  # whole-image stitching: refused by the channel step, not repeated
        predictor.with_infer(stitching="full").predict_image(single)
    assert (
        _one_line_error(excinfo)
        == f"{single}: 1 channel(s), but the model takes 2 separate channels (one file each: NAME_0000, NAME_0001, ...)"
    )


def test_channels_on_different_grids_are_refused(predictor: Predictor, two_channel: Path, tmp_path: Path):
    _copy_case(two_channel, "case_000", tmp_path)
    moved = tmp_path / "case_000_0001.nii.gz"
    image = nib.load(str(moved))
    affine = image.affine.copy()
    affine[:3, 3] += 5.0
    nib.Nifti1Image(np.asarray(image.dataobj), affine).to_filename(str(moved))
    case = ChannelCase("case_000", (tmp_path / "case_000_0000.nii.gz", moved))
    with pytest.raises(RuntimeError) as excinfo:  # raised inside LoadImaged
        predictor.prepare(case)
    message = _one_line_error(excinfo)
    assert message.startswith(f"{moved}: channel 1 lies on another voxel grid than channel 0 (case_000_0000.nii.gz)")


def test_a_case_with_an_extra_channel_is_refused(predictor: Predictor, two_channel: Path, tmp_path: Path):
    _copy_case(two_channel, "case_000", tmp_path)
    shutil.copy(tmp_path / "case_000_0001.nii.gz", tmp_path / "case_000_0002.nii.gz")
    (case,) = collect_inputs(tmp_path)
    with pytest.raises(
        InputError,
        match=r"case_000: 3 channel files, but the model takes 2 channel\(s\): 0 \(T2\), 1 \(ADC\) "
        r"\(extra: case_000_0002\.nii\.gz\)",
    ):
        predictor.prepare(case)
