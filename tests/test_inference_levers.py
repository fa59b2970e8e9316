"""Speed levers of inference and training: foreground windows, precision, the config upgrade, data-wait bookkeeping."""

from __future__ import annotations

import csv
import dataclasses

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.inference import Predictor
from medseg_monai.inference.stitching import covering_starts, scan_starts, sliding_window_stitch
from medseg_monai.networks.precision import FastForward, cpu_supports_bf16, resolve_precision
from medseg_monai.training import train
from medseg_monai.transforms.foreground import find_foreground, foreground_mode
from tests.helpers import SlabRecorder, ThresholdNet, threshold_predictor, tiny_config


def _ct_phantom(shape=(80, 72, 40), seed=0) -> np.ndarray:
    """``(1, X, Y, Z)`` Hounsfield units: air, an elliptic body off-centre, a bright organ inside it."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = ((x - 30) / 20.0) ** 2 + ((y - 40) / 16.0) ** 2 <= 1.0
    image = np.full(shape, -1000.0, dtype=np.float32) + rng.normal(0, 10, shape).astype(np.float32)
    image[body] = 40.0
    image[24:36, 34:46, 10:30] = 200.0
    return image[None]


# ---------------------------------------------------------------- where the body is
def test_find_foreground_boxes_the_largest_component_with_its_margin():
    image = _ct_phantom()
    image[0, 75:77, 2:4, :] = 300.0  # a marker far from the body, 0.4 % of its size: noise, not part of the box
    region = find_foreground(image, "ct", margin=(2, 2, 2), window=(16, 16, 8))
    assert region is not None and region.mode == "ct"
    (x0, x1), (y0, y1), (z0, z1) = [(s.start, s.stop) for s in region.slices]
    assert (x0, x1, y0, y1) == (8, 53, 22, 59)  # body x 10..50, y 24..56, plus 2
    assert (z0, z1) == (0, 40)
    assert region.mask.shape == image.shape[1:] and not region.mask[75:77, 2:4].any()
    assert region.mask[30, 40].all() and not region.mask[:8].any()
    assert find_foreground(image, "none", (2, 2, 2), (16, 16, 8)) is None
    assert find_foreground(np.full((1, 32, 32, 8), 50.0, np.float32), "ct", (0, 0, 0), (16, 16, 8)) is None  # all body
    assert (
        find_foreground(np.full((1, 32, 32, 8), -1000.0, np.float32), "ct", (0, 0, 0), (16, 16, 8)) is None
    )  # no body


def test_find_foreground_keeps_every_sizeable_component():
    image = np.full((1, 96, 64, 32), -1000.0, np.float32)
    image[0, 10:40, 20:44] = 30.0  # one leg
    image[0, 60:84, 24:40] = 30.0  # the other, about half its size: both must be segmented
    region = find_foreground(image, "ct", margin=(0, 0, 0), window=(16, 16, 8))
    assert (region.slices[0].start, region.slices[0].stop) == (10, 84)
    assert region.mask[70, 30].all() and region.mask[20, 30].all()


def test_find_foreground_box_is_at_least_one_window():
    image = np.zeros((1, 64, 64, 32), np.float32)
    image[0, 30:34, 30:34, 14:18] = 1.0
    region = find_foreground(image, "nonzero", margin=(0, 0, 0), window=(16, 16, 8))
    assert [s.stop - s.start for s in region.slices] == [16, 16, 8]


def test_auto_foreground_mode():
    ct, zero_border = np.zeros((1, 8, 8, 8)), np.zeros((1, 8, 8, 8))
    zero_border[0, 2:6, 2:6, 2:6] = 5.0
    assert foreground_mode("auto", "ct", ct) == "ct"
    assert foreground_mode("auto", "zscore", zero_border) == "nonzero"
    assert foreground_mode("auto", "zscore", zero_border + 1.0) == "none"
    assert foreground_mode("otsu", "ct", ct) == "otsu"


def test_covering_starts_drops_outer_windows_the_next_one_covers():
    starts = scan_starts(410, 96, 0.5)
    assert starts == [0, 48, 96, 144, 192, 240, 288, 314]
    assert covering_starts(starts, 96, 58, 353) == [48, 96, 144, 192, 240, 288]
    assert covering_starts(starts, 96, 82, 329) == [48, 96, 144, 192, 240]
    assert covering_starts(starts, 96, 0, 410) == starts
    assert covering_starts([0], 96, 10, 20) == [0]
    for lo, hi in [(58, 353), (82, 329), (0, 97), (300, 410), (100, 150)]:
        kept = covering_starts(starts, 96, lo, hi)
        covered = np.zeros(410, bool)
        for s in kept:
            covered[s : s + 96] = True
        assert covered[lo:hi].all()


def test_stitching_a_box_equals_the_whole_image_inside_it_and_is_background_outside():
    image = torch.from_numpy(np.random.default_rng(1).random((1, 70, 60, 20), dtype=np.float32))
    net = ThresholdNet()
    foreground = torch.zeros((70, 60, 20), dtype=torch.bool)
    foreground[20:50, 10:40, 4:16] = True
    region = (slice(18, 52), slice(8, 42), slice(0, 20))
    results = {}
    for name, kwargs in {"full": {}, "box": {"region": region, "foreground": foreground}}.items():
        out = torch.empty((2, 70, 60, 20))
        calls = []

        def forward(x, calls=calls):
            calls.append(len(x))
            return net(x)

        sliding_window_stitch(
            image,
            forward,
            SlabRecorder(out),
            (16, 16, 8),
            overlap=0.5,
            sw_batch_size=4,
            mode="constant",
            axis=0,
            **kwargs,
        )
        results[name] = (out, sum(calls))
    (full, full_windows), (box, box_windows) = results["full"], results["box"]
    assert box_windows < full_windows / 2
    inside = (slice(None), slice(20, 50), slice(10, 40), slice(4, 16))
    torch.testing.assert_close(box[inside], full[inside])
    uncovered = box[:, :8].reshape(2, -1)
    assert (uncovered[0] == 1).all() and (uncovered[1] == 0).all()  # background with certainty


def test_predictor_foreground_crop_keeps_the_ct_mask_and_writes_background_outside(tmp_path):
    image = _ct_phantom()
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(image[0].astype(np.int16), affine), path)
    masks = {}
    for crop in ("auto", "none"):
        predictor = threshold_predictor(3, patch=(16, 16, 8), intensity="ct", ct_window=(-100.0, 300.0))
        predictor = predictor.with_infer(foreground_crop=crop, crop_margin_mm=3.0)
        masks[crop] = predictor.predict_image(path)
    np.testing.assert_array_equal(masks["auto"], masks["none"])
    assert masks["auto"].sum() == 12 * 12 * 20  # the organ above 100 HU


def test_predictor_skips_windows_outside_the_body(tmp_path):
    image = _ct_phantom()
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(image[0].astype(np.int16), np.eye(4)), path)
    counts = {}
    for crop in ("ct", "none"):
        predictor = threshold_predictor(3, patch=(16, 16, 8), intensity="ct", ct_window=(-100.0, 300.0)).with_infer(
            foreground_crop=crop, crop_margin_mm=2.0
        )
        calls = []
        forward = predictor.window_forward
        net = forward.window_network
        forward.window_network = lambda x, calls=calls, net=net: calls.append(len(x)) or net(x)
        predictor.predict_image(path)
        counts[crop] = sum(calls)
    assert counts["ct"] < 0.6 * counts["none"]


# ---------------------------------------------------------------- precision
def test_resolve_precision():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_supports_bf16() else None)
    with pytest.raises(ValueError, match="precision 'fp16' is for CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        resolve_precision("half", cpu)


def test_bf16_inference_agrees_with_fp32(run_3d, synth_3d):
    image = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[0]
    masks = {
        p: Predictor.from_run(run_3d.run_dir, runtime={"precision": p}).predict_image(image) for p in ("fp32", "bf16")
    }
    assert masks["bf16"].dtype == np.uint8 and masks["bf16"].shape == masks["fp32"].shape
    assert (masks["bf16"] == masks["fp32"]).mean() >= 0.99


def test_fast_forward_returns_float32_and_trains():
    net = torch.nn.Conv3d(1, 2, 3, padding=1)
    wrapped = FastForward(net, torch.device("cpu"), torch.bfloat16, torch.channels_last_3d)
    x = torch.randn(2, 1, 8, 8, 8)
    out = wrapped(x)
    assert out.dtype == torch.float32 and out.shape == (2, 2, 8, 8, 8)
    out.sum().backward()
    assert net.weight.grad is not None and net.weight.dtype == torch.float32
    assert list(wrapped.state_dict()) == [f"network.{k}" for k in net.state_dict()]


def test_bf16_training_writes_float32_weights_and_data_wait(synth_2d, tmp_path):
    config = tiny_config(synth_2d, 2, epochs=1)
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, precision="bf16"))
    result = train(config, tmp_path)
    state = torch.load(result.best_checkpoint, weights_only=True)["network"]
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    with open(result.metrics_csv) as handle:
        row = next(csv.DictReader(handle))
    assert 0.0 < float(row["data_wait_s"]) < float(row["epoch_time_s"])


# ---------------------------------------------------------------- configs written before the precision settings
def version_1_config() -> dict:
    """A config as version 1 wrote it: device, precision and memory format in both ``train`` and ``infer``."""
    old = RunConfig().to_dict()
    runtime = old.pop("runtime")
    old["train"].update(runtime)
    old["infer"].update(runtime)
    old["version"] = 1
    return old


def test_runtime_changes_reach_the_plan_and_infer_refuses_them(run_3d):
    predictor = Predictor.from_run(run_3d.run_dir, runtime={"precision": "fp32", "memory_format": "contiguous"})
    plan = predictor.plan
    assert plan.dtype is None and plan.memory_format == torch.contiguous_format and plan.device.type == "cpu"
    assert predictor.describe()["runtime"] == {"device": "auto", "precision": "fp32", "memory_format": "contiguous"}
    assert predictor.with_runtime(precision="bf16").plan.runtime.precision == "bf16"
    assert predictor.with_infer(overlap=0.5).plan.runtime == plan.runtime  # the other section is kept
    with pytest.raises(ConfigError, match="infer: memory_format, precision belong to the runtime section now"):
        Predictor.from_run(run_3d.run_dir, infer={"precision": "fp32", "memory_format": "contiguous"})


def test_old_configs_are_upgraded():
    old = version_1_config()
    old["infer"].pop("precision")
    old["infer"]["amp"] = False
    old["train"].pop("precision")
    old["train"].pop("schedule_by_time")
    old["train"].update(amp=True, fit_epochs_to_budget=True)
    config = RunConfig.from_dict(old)
    assert config.runtime.precision == "fp32" and config.train.schedule_by_time


# ---------------------------------------------------------------- reading the next case while the network runs
def test_read_ahead_gives_the_same_masks_and_reports_a_bad_case(run_3d, synth_3d, tmp_path):
    from tests.helpers import predict_batch

    inputs = tmp_path / "in"
    inputs.mkdir()
    images = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[:3]
    for path in images:
        (inputs / path.name).symlink_to(path)
    (inputs / "case_001b.nii.gz").write_bytes(b"not a nifti")  # sorts second: read ahead while case_000 runs
    predictor = Predictor.from_run(run_3d.run_dir)
    outputs = {}
    for read_ahead in (True, False):
        results = predict_batch(predictor, inputs, tmp_path / f"out_{read_ahead}", read_ahead=read_ahead)
        assert [r.status for r in results] == ["written", "written", "failed", "written"]
        assert "case_001b.nii.gz" in results[2].error
        outputs[read_ahead] = [np.asarray(nib.load(r.output).dataobj) for r in results if r.ok]
    for a, b in zip(outputs[True], outputs[False]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- memory layout
def test_memory_format_auto_is_channels_last_except_for_unetpp():
    from medseg_monai.networks.precision import resolve_memory_format

    assert resolve_memory_format("auto", 3, "unet") is torch.channels_last_3d
    assert resolve_memory_format("auto", 2, "deeplabv3") is torch.channels_last
    assert resolve_memory_format("auto", 2, "unetpp") is torch.contiguous_format
    assert resolve_memory_format("channels_last", 2, "unetpp") is torch.channels_last
    assert resolve_memory_format("contiguous", 3, "unet") is torch.contiguous_format
    with pytest.raises(ValueError, match="memory_format must be one of auto, channels_last, contiguous, got 'nhwc'"):
        resolve_memory_format("nhwc", 2, "unet")


def test_channels_last_predictor_agrees_with_contiguous(run_3d, synth_3d):
    image = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[1]
    fast = Predictor.from_run(run_3d.run_dir, runtime={"memory_format": "channels_last", "precision": "fp32"})
    plain = Predictor.from_run(run_3d.run_dir, runtime={"memory_format": "contiguous", "precision": "fp32"})
    conv = next(m for m in fast.network.modules() if isinstance(m, torch.nn.Conv3d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d) and not conv.weight.is_contiguous()
    assert (fast.predict_image(image) == plain.predict_image(image)).mean() >= 0.999
    assert fast.describe()["model"]["weights_sha256"] == plain.describe()["model"]["weights_sha256"]


def test_argmax_classes_matches_torch_argmax():
    from medseg_monai.inference.stitching import argmax_classes

    scores = torch.randn(4, 9, 7, 5)
    scores[:, 0, 0, 0] = 1.0  # a tie: the first class wins, as in torch.argmax
    assert torch.equal(argmax_classes(scores, torch.int64), scores.argmax(dim=0))
    assert argmax_classes(scores).dtype == torch.uint8


# ---------------------------------------------------------------- probabilities back to the source grid
@pytest.mark.parametrize("flip_x,num_classes", [(False, 3), (True, 3), (False, 2)])
def test_linear_inversion_equals_interpolating_the_whole_probability_map(flip_x, num_classes):
    from medseg_monai.inference.inversion import SlabScoreInverter
    from medseg_monai.transforms.resampling import labels_to_source_grid

    rng = np.random.default_rng(0)
    grid_shape, source_shape = (20, 16, 12), (30, 16, 9)  # the source is finer along x, coarser along z
    grid_affine = np.diag([1.5, 1.0, 2.0, 1.0])
    source_affine = np.diag([1.0, 1.0, 8.0 / 3.0, 1.0])
    if flip_x:  # the source stored LAS: its x axis runs against the grid's
        source_affine[0, 0], source_affine[0, 3] = -1.0, 29.0
    logits = torch.from_numpy(rng.normal(size=(num_classes, *grid_shape)).astype(np.float32))
    inverter = SlabScoreInverter(grid_affine, source_affine, source_shape, grid_shape, slab_axis=0, scores="logits")
    assert inverter.labels_only  # no maps asked for: the class differences are interpolated
    for start in range(0, 20, 7):  # slabs along x as the sliding window emits them
        inverter.aggregate(start, min(start + 7, 20), logits[:, start : start + 7])
    labels = inverter.finalize().labels

    # reference: interpolate the whole probability map at every source voxel's position in the grid
    from scipy.ndimage import map_coordinates

    probs = torch.softmax(logits, dim=0).numpy()
    index = np.stack(np.meshgrid(*[np.arange(s) for s in source_shape], indexing="ij"), 0).reshape(3, -1)
    position = (np.linalg.solve(grid_affine, source_affine) @ np.vstack([index, np.ones(index.shape[1])]))[:3]
    position = np.clip(position, 0, np.array(grid_shape)[:, None] - 1)
    interpolated = np.stack([map_coordinates(p, position, order=1, mode="nearest") for p in probs])
    expected = interpolated.argmax(axis=0).reshape(source_shape)
    assert labels.shape == source_shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
    nearest = labels_to_source_grid(probs.argmax(0).astype(np.uint8), grid_affine, source_affine, source_shape)
    assert (nearest != labels).any()  # the two inversions do differ on random scores


@pytest.mark.parametrize("flip_x", [False, True])
def test_linear_inversion_in_a_box_equals_the_whole_grid_with_background_outside_it(flip_x):
    """Only the grid around the box is interpolated in-plane; labels, probabilities and entropy equal the whole
    grid's."""
    from medseg_monai.inference.inversion import SlabScoreInverter
    from medseg_monai.inference.maps import MapRequest

    rng = np.random.default_rng(1)
    grid_shape, source_shape = (20, 16, 12), (30, 21, 9)
    grid_affine = np.diag([1.5, 1.0, 2.0, 1.0])
    source_affine = np.diag([1.0, 0.75, 8.0 / 3.0, 1.0])
    if flip_x:
        source_affine[0, 0], source_affine[0, 3] = -1.0, 29.0
    box = (slice(4, 15), slice(3, 9), slice(5, 12))  # touches the grid's end along z
    logits = torch.from_numpy(rng.normal(size=(3, *grid_shape)).astype(np.float32))
    background = logits.clone()
    outside = torch.ones(grid_shape, dtype=torch.bool)
    outside[box] = False
    background[:, outside] = -1e4
    background[0][outside] = 1e4
    results = []
    for _kind, scores, region in (("box", logits, box), ("whole", background, None)):
        request = MapRequest(probabilities="float32", entropy=True)
        inverter = SlabScoreInverter(
            grid_affine,
            source_affine,
            source_shape,
            grid_shape,
            slab_axis=1,
            scores="logits",
            box=region,
            request=request,
            num_classes=3,
        )
        for start in range(0, 16, 5):  # slabs along y
            inverter.aggregate(start, min(start + 5, 16), scores[:, :, start : start + 5].movedim(2, 1))
        merged = inverter.finalize()
        results.append((merged.labels, merged.probabilities, merged.entropy))
    labels_only = SlabScoreInverter(
        grid_affine, source_affine, source_shape, grid_shape, slab_axis=1, scores="logits", box=box, num_classes=3
    )
    for start in range(0, 16, 5):
        labels_only.aggregate(start, min(start + 5, 16), logits[:, :, start : start + 5].movedim(2, 1))
    (labels, probs, entropy), (labels_whole, probs_whole, entropy_whole) = results
    # interpolated differences rank as the probabilities do
    np.testing.assert_array_equal(labels_only.finalize().labels, labels)
    assert 0 < (labels > 0).mean() < 0.5  # the box holds foreground, the rest is background
    np.testing.assert_array_equal(labels, labels_whole)
    np.testing.assert_allclose(probs, probs_whole, atol=1e-6)
    np.testing.assert_allclose(entropy, entropy_whole, atol=1e-5)


def test_linear_inversion_refuses_oblique_grids():
    from medseg_monai.inference.inversion import SlabScoreInverter

    angle = np.deg2rad(20)
    oblique = np.eye(4)
    oblique[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    with pytest.raises(ValueError, match="axis-aligned"):
        SlabScoreInverter(np.eye(4), oblique, (8, 8, 8), (8, 8, 8), slab_axis=0, scores="probabilities")


def test_predictor_inversions_agree_where_the_grids_are_equal(run_3d, synth_3d):
    image = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[2]
    linear = Predictor.from_run(run_3d.run_dir, infer={"inversion": "linear"}).predict_image(image)
    labels = Predictor.from_run(run_3d.run_dir, infer={"inversion": "labels"}).predict_image(image)
    assert linear.shape == labels.shape == nib.load(image).shape and linear.dtype == np.uint8
    assert (linear == labels).mean() > 0.95  # the same model; only boundary voxels between grids may differ
