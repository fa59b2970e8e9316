"""Training and prediction end to end on tiny synthetic data: run folder, masks, geometry, orientation."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from medseg_monai.batch import predict_case
from medseg_monai.config import RunConfig
from medseg_monai.inference import Predictor
from medseg_monai.models import load_checkpoint
from medseg_monai.training import train
from medseg_monai.utils import atomic_path
from tests.helpers import predict_batch, threshold_predictor, tiny_config


# ---------------------------------------------------------------- training outputs
def test_training_writes_a_complete_run_folder(run_2d):
    run = run_2d.run_dir
    config = RunConfig.load(run / "config.json")
    assert config.data.label_values == (0, 1, 2)
    assert config.data.in_channels == 1
    assert config.data.label_names == ("background", "class_1", "class_2")
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "lr", "val_mean_dice", "val_mean_iou", "val_dice_class_2"} <= set(rows[0])
    for row in rows:  # both classes in every validation case: the mean is the mean of the per-class Dice
        assert float(row["val_mean_dice"]) == pytest.approx(
            (float(row["val_dice_class_1"]) + float(row["val_dice_class_2"])) / 2, abs=1e-6
        )
    assert run_2d.best_metric == pytest.approx(max(float(r["val_mean_dice"]) for r in rows))
    assert float(rows[run_2d.best_epoch - 1]["val_mean_dice"]) == pytest.approx(run_2d.best_metric)
    with Image.open(run / "curves.png") as png:
        assert png.format == "PNG" and png.size[0] > 300
    for name in ("best.pt", "last.pt"):
        payload = torch.load(run / "checkpoints" / name, weights_only=True)
        assert set(payload) >= {"network", "optimizer", "config", "trainer", "history"}
    assert run_2d.best_epoch in (1, 2)
    assert not list(run.rglob(".*.tmp*")), "temporary files left behind"


def test_resume_continues_from_last_epoch(synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=1)
    first = train(config, tmp_path)
    assert first.epochs_run == 1
    more = train(dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=3)), tmp_path, resume=True)
    assert [row["epoch"] for row in more.history] == [1, 2, 3]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["epoch"] == 3


def test_learning_rate_follows_the_elapsed_share_of_the_time_budget(synth_2d, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from medseg_monai.training import handlers

    # the run's clock advances 0.25 s per reading, so the schedule sees the same time however busy the machine is
    readings = iter(range(10**6))
    monkeypatch.setattr(
        handlers, "time", SimpleNamespace(monotonic=lambda: 0.25 * next(readings), perf_counter=lambda: 0.0)
    )
    config = tiny_config(synth_2d, 2, epochs=500)
    train_cfg = dataclasses.replace(
        config.train, time_budget_min=0.1, schedule_by_time=True, val_interval=2, learning_rate=1e-2
    )
    result = train(dataclasses.replace(config, train=train_cfg), tmp_path)
    rates = [row["lr"] for row in result.history]
    assert 2 < result.epochs_run < 500  # stopped by the 6-second budget, not by the epoch cap
    assert result.history[-1]["elapsed_s"] >= 6.0 > result.history[-2]["elapsed_s"]
    assert rates[0] == pytest.approx(1e-2, rel=0.05)
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))  # falls every epoch

    # the last epoch's rate was set during the epoch before it: at a share of the budget between its start and end
    def cosine(elapsed: float) -> float:
        return 1e-2 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(elapsed / 6.0, 1.0))))

    assert cosine(result.history[-2]["elapsed_s"]) <= rates[-1] <= cosine(result.history[-3]["elapsed_s"])
    assert rates[-1] < 0.5 * rates[0]


def test_time_budget_schedule_curves():
    from medseg_monai.training.handlers import TimeBudgetSchedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = TimeBudgetSchedule(optimizer, "cosine", None, 60.0)
    assert [round(cosine.factor(s), 4) for s in (0.0, 0.5, 1.0, 2.0)] == [1.0, 0.505, 0.01, 0.01]
    assert TimeBudgetSchedule(optimizer, "poly", None, 60.0).factor(0.75) == pytest.approx(0.25**0.9)
    with pytest.raises(ValueError, match="time budget must be positive, got 0"):
        TimeBudgetSchedule(optimizer, "cosine", None, 0)


def test_image_mask_size_mismatch_is_named(tmp_path):
    for i in range(3):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / f"c{i}.png")
        Image.fromarray(np.zeros((32, 32 if i else 30), np.uint8)).save(tmp_path / f"c{i}_mask.png")
    with pytest.raises(ValueError, match=r"c0\.png is \(32, 32\) but its mask .*c0_mask\.png is \(32, 30\)"):
        train(tiny_config(tmp_path, 2, epochs=1), tmp_path / "run")


# ---------------------------------------------------------------- prediction outputs
def test_predict_png_writes_source_sized_label_maps(run_2d, synth_2d, tmp_path):
    predictor = Predictor.from_run(run_2d.run_dir)
    sources = sorted(p for p in synth_2d.glob("*.png") if not p.stem.endswith("_mask"))[:3]
    results = predict_batch(predictor, sources, tmp_path)
    assert [r.status for r in results] == ["written"] * 3
    for source, result in zip(sources, results):
        assert result.output.name == source.name
        mask = np.asarray(Image.open(result.output))
        assert mask.dtype == np.uint8 and mask.shape == np.asarray(Image.open(source)).shape
        assert set(np.unique(mask)) <= {0, 1, 2}
    again = predict_batch(predictor, sources, tmp_path)
    assert [r.status for r in again] == ["skipped"] * 3


def test_predict_follows_no_path_named_in_the_run_config(run_2d, synth_2d, tmp_path, monkeypatch):
    """A run folder's config.json may name data and weights elsewhere; predicting reads only the run folder and the
    inputs."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_2d.run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "elsewhere" / "data")
    config["model"]["pretrained"] = str(tmp_path / "elsewhere" / "weights.pt")
    (run / "config.json").write_text(json.dumps(config))
    opened = []
    real_open = open

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    source = next(p for p in sorted(synth_2d.glob("*.png")) if not p.stem.endswith("_mask"))
    results = predict_batch(Predictor.from_run(run), [source], tmp_path / "out")
    assert results[0].status == "written"
    assert not [name for name in opened if "elsewhere" in name]


def test_predict_nifti_keeps_affine_shape_and_integer_dtype(run_3d, synth_3d, tmp_path):
    sources = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[:2]
    results = predict_batch(Predictor.from_run(run_3d.run_dir, checkpoint="last"), sources, tmp_path)
    assert all(r.status == "written" for r in results), [r.error for r in results]
    for source, result in zip(sources, results):
        src, out = nib.load(source), nib.load(result.output)
        assert out.shape == src.shape
        np.testing.assert_array_equal(out.affine, src.affine)
        assert out.get_data_dtype() == np.uint8
        assert int(out.header["qform_code"]) == int(src.header["qform_code"])
        s_src, s_out = sitk.ReadImage(str(source)), sitk.ReadImage(str(result.output))
        assert s_out.GetSize() == s_src.GetSize()
        np.testing.assert_allclose(s_out.GetOrigin(), s_src.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(s_out.GetDirection(), s_src.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(s_out.GetSpacing(), s_src.GetSpacing(), atol=1e-6)


def test_png_orientation_survives_the_whole_pipeline(tmp_path):
    """An asymmetric, non-square image: the predicted mask must match it pixel for pixel."""
    image = np.full((40, 70), 20, np.uint8)
    image[3:10, 5:60] = 230  # a long bar near the top
    image[10:35, 5:12] = 230  # a leg down the left side: an "L" that no flip or transpose maps onto itself
    source = tmp_path / "in" / "asym.png"
    source.parent.mkdir()
    Image.fromarray(image).save(source)
    result = predict_case(threshold_predictor(2, (32, 32)), source, tmp_path / "out")
    assert result.status == "written", result.error
    mask = np.asarray(Image.open(result.output))
    assert mask.shape == (40, 70)
    np.testing.assert_array_equal(mask, np.where(image > 128, 255, 0))


@pytest.mark.parametrize("flip_x", [False, True])
def test_oblique_nifti_round_trips_voxel_for_voxel(tmp_path, flip_x):
    rng = np.random.default_rng(0)
    volume = (rng.random((20, 24, 12)) > 0.7).astype(np.float32) * 100
    angle = np.deg2rad(12)
    affine = np.eye(4)
    affine[:3, :3] = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    ) @ np.diag([0.8, 0.9, 2.5])
    if flip_x:
        affine[:3, 0] *= -1
    affine[:3, 3] = (-12.5, 30.0, 7.25)
    source = tmp_path / "obl.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), source)
    predictor = threshold_predictor(3, (16, 16, 8), target_spacing=(0.8, 0.9, 2.5))
    result = predict_case(predictor, source, tmp_path / "out")
    assert result.status == "written", result.error
    out = nib.load(result.output)
    np.testing.assert_array_equal(out.affine, nib.load(source).affine)
    np.testing.assert_array_equal(np.asarray(out.dataobj), (volume > 50).astype(np.uint8))


def test_predict_file_writes_one_named_file_and_refuses_a_folder_before_predicting(tmp_path):
    source = tmp_path / "slice.png"
    image = np.full((32, 40), 10, np.uint8)
    image[4:20, 6:30] = 200
    Image.fromarray(image).save(source)
    predictor = threshold_predictor(2, (32, 32))
    assert predictor.predict_file(source, tmp_path / "out" / "mask.png") == tmp_path / "out" / "mask.png"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "mask.png")), np.where(image > 128, 255, 0))

    class Untouchable(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the network ran")

    refusing = Predictor(Untouchable(), predictor.config)
    with pytest.raises(ValueError, match=r"out: a folder; predict_file writes one mask file"):
        refusing.predict_file(source, tmp_path / "out")


def test_batch_goes_on_past_a_bad_case(run_2d, synth_2d, tmp_path):
    sources = sorted(p for p in synth_2d.glob("*.png") if not p.stem.endswith("_mask"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    results = predict_batch(Predictor.from_run(run_2d.run_dir), [sources[0], broken, sources[1]], tmp_path / "out")
    assert [r.status for r in results] == ["written", "failed", "written"]
    assert "broken.png" in results[1].error
    assert not (tmp_path / "out" / "broken.png").exists()


def test_predictor_rejects_output_into_input_folder(run_2d, synth_2d):
    with pytest.raises(ValueError, match="output folder is the input folder"):
        predict_batch(Predictor.from_run(run_2d.run_dir), synth_2d, synth_2d)


def test_checkpoint_errors_name_the_file(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
