"""Batch conversion: every format in and out with exact geometry, skip-done and resume, a bad case in the
middle, sharding (in-process parts and torchrun), the run manifest, the QA report, slab stitching and
lean resampling against MONAI's own, TTA and post-processing, integer dtypes.

Geometry is read back with both nibabel (NIfTI outputs) and SimpleITK (every volume output).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from medseg_monai.batch import MANIFEST_NAME, REPORT_NAME, Shard, predict_case, resolve_shard, wait_for_parts
from medseg_monai.batch.manifest import case_flags
from medseg_monai.cli import main
from medseg_monai.config import InferConfig
from medseg_monai.inference import Predictor
from medseg_monai.inference.stitching import sliding_window_stitch
from medseg_monai.io import file_sha256, image_loader, mask_statistics, value_counts
from medseg_monai.transforms.resampling import labels_to_source_grid, lean_spacing
from tests.helpers import SlabRecorder, ThresholdNet, predict_batch, threshold_predictor

SPACING = (0.8, 0.9, 2.5)
ORIGIN = (-12.5, 30.0, 7.25)
LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads, and waiting OpenMP threads cost a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rotation(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def blob_volume(shape=(20, 24, 12), seed=0) -> np.ndarray:
    """0/100 int16 volume: two boxes and noise specks, asymmetric so a flipped axis cannot pass."""
    vol = np.zeros(shape, np.int16)
    vol[2:9, 3:15, 2:8] = 100
    vol[12:18, 16:22, 5:11] = 100
    rng = np.random.default_rng(seed)
    vol[tuple(rng.integers(0, s, 6) for s in shape)] = 100
    return vol


def ras_affine(direction, spacing=SPACING, origin=ORIGIN) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def sitk_image(vol: np.ndarray, direction_lps: np.ndarray, spacing=SPACING, origin=ORIGIN) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.T))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(tuple(np.asarray(direction_lps, float).ravel()))
    return img


def write_dicom_series(folder: Path, vol: np.ndarray, direction_lps: np.ndarray) -> None:
    folder.mkdir(parents=True)
    volume = sitk_image(vol, direction_lps)
    d, uid = volume.GetDirection(), "1.2.826.0.1.3680043.2.1125.42"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(vol.shape[2]):
        plane = volume[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0020|000d": uid + ".0",
            "0020|000e": uid,
            "0008|0018": f"{uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0037": "\\".join(f"{v:.10f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": f"{SPACING[2]}",
            "0020|0032": "\\".join(f"{v:.10f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))),
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(plane)


def read_sitk(path: Path) -> sitk.Image:
    if path.is_dir():
        return sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path)))
    return sitk.ReadImage(str(path))


def sitk_ras(img: sitk.Image) -> np.ndarray:
    return ras_affine(
        LPS @ np.asarray(img.GetDirection()).reshape(3, 3), img.GetSpacing(), LPS @ np.asarray(img.GetOrigin())
    )


def assert_same_geometry(source: Path, output: Path) -> None:
    """Shape, spacing, origin and direction equal per SimpleITK, and per nibabel for NIfTI outputs."""
    src, out = read_sitk(source), sitk.ReadImage(str(output))
    assert out.GetSize() == src.GetSize()
    assert out.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(out.GetSpacing(), src.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(out.GetOrigin(), src.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(out.GetDirection(), src.GetDirection(), atol=1e-6)
    if output.name.endswith(".nii.gz"):
        mask = nib.load(str(output))
        assert mask.get_data_dtype() == np.uint8 and mask.shape == src.GetSize()
        if source.name.endswith(".nii.gz"):
            ref = nib.load(str(source))
            np.testing.assert_array_equal(mask.affine, ref.affine)
            assert int(mask.header["qform_code"]) == int(ref.header["qform_code"])
            assert int(mask.header["sform_code"]) == int(ref.header["sform_code"])
        else:
            np.testing.assert_allclose(mask.affine, sitk_ras(src), atol=1e-4)


VOLUME_CASES = {  # name: (suffix, direction in RAS, qform/sform codes for NIfTI)
    "nifti_ras": (".nii.gz", np.eye(3), (1, 1)),
    "nifti_las_qform_only": (".nii.gz", np.diag([-1.0, 1.0, 1.0]), (1, 0)),
    "nifti_lps_sform_only": (".nii.gz", np.diag([-1.0, -1.0, 1.0]), (0, 2)),
    "nifti_oblique": (".nii.gz", rotation(17.0) @ np.diag([-1.0, 1.0, 1.0]), (1, 1)),
    "mha_oblique": (".mha", rotation(-23.0), None),
    "mhd": (".mhd", np.diag([-1.0, 1.0, 1.0]), None),
    "nrrd_lps": (".nrrd", np.diag([-1.0, -1.0, 1.0]), None),
    "dicom_oblique": ("", rotation(11.0), None),
}


@pytest.mark.parametrize("case", sorted(VOLUME_CASES))
def test_volume_formats_round_trip_with_exact_geometry(tmp_path, case):
    suffix, direction, codes = VOLUME_CASES[case]
    vol = blob_volume()
    source = tmp_path / "in" / f"scan{suffix}"
    source.parent.mkdir()
    if suffix == ".nii.gz":
        affine = ras_affine(direction)
        img = nib.Nifti1Image(vol, affine)
        img.set_qform(affine, codes[0])
        img.set_sform(affine, codes[1])
        nib.save(img, str(source))
    elif suffix:
        sitk.WriteImage(sitk_image(vol, LPS @ direction), str(source))
    else:
        write_dicom_series(source, vol, LPS @ direction)
    predictor = threshold_predictor(3)
    if not suffix:  # a DICOM series: its NIfTI mask here (the default DICOM SEG: tests/test_dicom_seg.py)
        predictor = predictor.with_infer(output_format="nifti")
    result = predict_batch(predictor, [source], tmp_path / "out")[0]
    assert result.status == "written", result.error
    expected_name = {".mhd": "scan.mha", "": "scan.nii.gz"}.get(suffix, source.name)
    assert result.output.name == expected_name
    assert_same_geometry(source, result.output)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(result.output))).T
    np.testing.assert_array_equal(written, (vol > 50).astype(np.uint8))  # no resampling: voxel for voxel
    assert json.loads(result.output.with_name("scan.labels.json").read_text())["labels"] == {
        "0": "background",
        "1": "class_1",
    }


RASTER_CASES = {  # name: (file name, array, PIL mode)
    "png_gray": ("a.png", lambda img: img, "L"),
    "png_rgb": ("b.png", lambda img: np.stack([img, img, img], axis=-1), "RGB"),
    "png_16bit": ("c.png", lambda img: img.astype(np.uint16) * 250, "I;16"),
    "tif": ("d.tif", lambda img: img, "L"),
    "jpg": ("e.jpg", lambda img: img, "L"),
}


@pytest.mark.parametrize("case", sorted(RASTER_CASES))
def test_raster_formats_round_trip(tmp_path, case):
    name, make, mode = RASTER_CASES[case]
    gray = np.full((40, 70), 20, np.uint8)
    gray[3:10, 5:60] = 230
    gray[10:35, 5:12] = 230  # an "L": no flip or transpose maps it onto itself
    source = tmp_path / "in" / name
    source.parent.mkdir()
    array = make(gray)
    Image.fromarray(array).save(source)
    with Image.open(source) as check:
        assert check.mode == mode
    result = predict_batch(threshold_predictor(2), [source], tmp_path / "out")[0]
    assert result.status == "written", result.error
    assert result.output.name == Path(name).stem + (".tif" if name.endswith(".tif") else ".png")
    with Image.open(result.output) as out:
        assert out.mode == "L" and out.size == (70, 40)
        mask = np.asarray(out)
    assert sitk.ReadImage(str(result.output)).GetSize() == (70, 40)
    expected = np.where(gray > 128, 255, 0)
    if name.endswith(".jpg"):  # lossy source: allow edge pixels
        assert (mask == expected).mean() > 0.98
    else:
        np.testing.assert_array_equal(mask, expected)


def test_anisotropic_resampling_slab_matches_monai_full(tmp_path):
    vol = blob_volume((30, 26, 10))
    source = tmp_path / "obl.nii.gz"
    nib.save(nib.Nifti1Image(vol, ras_affine(rotation(9.0) @ np.diag([-1.0, 1.0, 1.0]), (0.7, 0.8, 3.0))), str(source))
    slab = threshold_predictor(3, target_spacing=(1.0, 1.0, 1.0)).with_infer(inversion="labels")
    full = slab.with_infer(stitching="full")  # MONAI's Invertd with nearest_interp: the labels inversion
    a, b = slab.predict_image(source), full.predict_image(source)
    assert a.dtype == np.uint8 and a.shape == vol.shape
    assert (a == b).mean() > 0.995  # only exact rounding ties of the nearest-neighbour inverse may differ
    linear = slab.with_infer(inversion="linear").predict_image(source)
    assert linear.dtype == np.uint8 and linear.shape == vol.shape and (linear == a).mean() > 0.97
    truth = vol > 50
    dice = 2 * np.logical_and(a > 0, truth).sum() / ((a > 0).sum() + truth.sum())
    assert dice > 0.85


def test_real_nrrd_and_nifti_cases_keep_geometry(shared_data_dir, run_3d, tmp_path):
    root = shared_data_dir / "radiomics_tumor3d_mini"
    sources = [
        root / "nrrd" / "brain1_image.nrrd",
        root / "imagesTr" / "brain1.nii.gz",
        root / "nrrd" / "breast1_image.nrrd",
        root / "imagesTr" / "breast1.nii.gz",
    ]
    if not all(p.exists() for p in sources):
        pytest.skip(f"{root}: brain1/breast1 NRRD and NIfTI not present")
    infer = InferConfig(roi_size=(96, 96, 64), overlap=0.0, sw_batch_size=1)
    predictor = Predictor.from_run(run_3d.run_dir, infer=infer, runtime={"device": "cpu"})
    results = predict_batch(predictor, sources, tmp_path / "out")
    assert [r.status for r in results] == ["written"] * 4, [r.error for r in results]
    for source, result in zip(sources, results):
        assert_same_geometry(source, result.output)
    # brain1 is LAS with 6.5 mm slices, breast1 LPS: the NRRD original and its NIfTI copy (float32 affine,
    # so resampling weights differ in the last bits) give the same mask but for a few boundary voxels
    for nrrd_result, nifti_result in ((results[0], results[1]), (results[2], results[3])):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(nrrd_result.output)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti_result.output)))
        assert (a == b).mean() > 0.999


# ---------------------------------------------------------------------------------------------- batch behaviour
def png_inputs(synth_2d: Path, folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in synth_2d.glob("*.png") if not p.stem.endswith("_mask"))[:n]
    for p in sources:
        (folder / p.name).write_bytes(p.read_bytes())
    return sorted(folder.glob("*.png"))


def test_skip_done_resume_after_interruption_and_overwrite(run_2d, synth_2d, tmp_path):
    sources = png_inputs(synth_2d, tmp_path / "in", 3)
    out = tmp_path / "out"
    predictor = Predictor.from_run(run_2d.run_dir)
    first = predict_batch(predictor, sources, out)
    assert [r.status for r in first] == ["written"] * 3
    # an interrupted run: one mask truncated by a non-atomic tool, one missing, a temporary left behind
    (out / sources[1].name).write_bytes(b"\x89PNG\r\n")
    (out / sources[2].name).unlink()
    stale = out / f".{sources[2].name}.x1y2z3.tmp.png"
    stale.write_bytes(b"partial")
    again = predict_batch(predictor, sources, out)
    assert [r.status for r in again] == ["skipped", "written", "written"]
    assert not stale.exists()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    records = manifest["cases"]
    assert [r["status"] for r in records] == ["skipped", "written", "written"]
    assert records[0]["sha256"] == first[0].sha256 == file_sha256(out / sources[0].name)
    assert records[0]["seconds"] == pytest.approx(first[0].seconds, abs=1e-3)  # carried over from the first run
    assert records[0]["labels"] == first[0].labels
    assert [r.status for r in predict_batch(predictor, sources, out, overwrite=True)] == ["written"] * 3


def test_bad_case_in_the_middle_is_reported_and_the_batch_goes_on(run_3d, synth_3d, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted((synth_3d / "imagesTr").glob("*.nii.gz"))[:2]
    (folder / "a.nii.gz").write_bytes(good[0].read_bytes())
    (folder / "b_broken.nii.gz").write_bytes(good[1].read_bytes()[:500])  # truncated gzip
    (folder / "c.nii.gz").write_bytes(good[1].read_bytes())
    out = tmp_path / "out"
    code = main(
        ["-q", "predict", "--model", str(run_3d.run_dir), "--input", str(folder), "--output", str(out), "--report"]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "2 written, 0 skipped (already done), 1 failed" in printed and "b_broken.nii.gz" in printed
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [r["status"] for r in manifest["cases"]] == ["written", "failed", "written"]
    assert manifest["summary"]["failed"] == 1 and "b_broken.nii.gz" in manifest["summary"]["failed_cases"][0]["error"]
    assert manifest["cases"][1]["flags"] == ["failed"] and manifest["cases"][1]["output"] is None
    assert (out / "a.nii.gz").exists() and (out / "c.nii.gz").exists() and not (out / "b_broken.nii.gz").exists()
    page = (out / REPORT_NAME).read_text()
    assert page.count('<tr class="failed">') == 1 and "b_broken.nii.gz" in page


def test_in_process_parts_match_a_single_run(run_2d, synth_2d, tmp_path):
    sources = png_inputs(synth_2d, tmp_path / "in", 5)
    predictor = Predictor.from_run(run_2d.run_dir)
    single = {r.output.name: r.sha256 for r in predict_batch(predictor, sources, tmp_path / "single")}
    seen = []
    for part in range(3):
        report = str(tmp_path / "parts" / REPORT_NAME) if part == 2 else None
        results = predict_batch(predictor, sources, tmp_path / "parts", num_parts=3, part_id=part, report=report)
        seen += [r.input.name for r in results]
        assert not (tmp_path / "parts" / MANIFEST_NAME).exists() or part == 2  # merged only when all parts are done
    assert sorted(seen) == sorted(p.name for p in sources) and len(seen) == len(set(seen))  # no gap, no overlap
    assert {name: file_sha256(tmp_path / "parts" / name) for name in single} == single
    merged = json.loads((tmp_path / "parts" / MANIFEST_NAME).read_text())
    assert [r["index"] for r in merged["cases"]] == list(range(5)) and len(merged["parts"]) == 3
    assert (tmp_path / "parts" / REPORT_NAME).exists()


def test_shard_resolution():
    assert resolve_shard(environ={}) == Shard(0, 1, "single")
    assert resolve_shard(environ={"WORLD_SIZE": "4", "RANK": "2"}) == Shard(2, 4, "torchrun")
    assert resolve_shard(3, 1, environ={}) == Shard(1, 3, "explicit")
    assert Shard(1, 3).select(list(range(8))) == [1, 4, 7]
    with pytest.raises(ValueError, match="go together"):
        resolve_shard(2, None, environ={})
    with pytest.raises(ValueError, match="part id must be in"):
        resolve_shard(2, 2, environ={})
    with pytest.raises(ValueError, match="contradict the torchrun launch"):
        resolve_shard(2, 0, environ={"WORLD_SIZE": "3", "RANK": "0"})


def test_torchrun_two_processes_match_one(run_2d, synth_2d, tmp_path):
    sources = png_inputs(synth_2d, tmp_path / "in", 3)
    assert torch.get_num_threads() == 1  # as torchrun's workers (OMP_NUM_THREADS=1): the same arithmetic
    single = {
        r.output.name: r.sha256 for r in predict_batch(Predictor.from_run(run_2d.run_dir), sources, tmp_path / "single")
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "medseg_monai.cli",
        "-q",
        "predict",
        "--model",
        str(run_2d.run_dir),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "dist"),
        "--report",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {name: file_sha256(tmp_path / "dist" / name) for name in single} == single
    merged = json.loads((tmp_path / "dist" / MANIFEST_NAME).read_text())
    assert sorted(p["index"] for p in merged["parts"]) == [0, 1] and merged["summary"]["written"] == 3
    assert {
        p["launcher"] for p in (json.loads(f.read_text())["part"] for f in (tmp_path / "dist").glob("*.part-*"))
    } == {"torchrun"}
    assert wait_for_parts(tmp_path / "dist", Shard(0, 2), timeout_s=0)


def test_output_name_clash_is_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(blob_volume(), np.eye(4)), str(tmp_path / folder / "scan.nii.gz"))
    with pytest.raises(ValueError, match="name clash.*scan.nii.gz"):
        predict_batch(
            threshold_predictor(3), [tmp_path / "a" / "scan.nii.gz", tmp_path / "b" / "scan.nii.gz"], tmp_path / "out"
        )


# ---------------------------------------------------------------------------------------------- manifest and report
def test_manifest_fields_statistics_and_report(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    two = np.zeros((20, 24, 12), np.int16)
    two[2:6, 2:6, 2:6] = 100
    two[10:16, 12:20, 4:10] = 100  # 2 components, 64 + 288 voxels
    many = np.zeros((20, 24, 12), np.int16)
    many[::3, ::4, ::4] = 100  # 7 * 6 * 3 isolated voxels
    empty = np.zeros((20, 24, 12), np.int16)
    for name, vol in (("two", two), ("many", many), ("empty", empty)):
        nib.save(nib.Nifti1Image(vol, ras_affine(np.eye(3))), str(folder / f"{name}.nii.gz"))
    out = tmp_path / "out"
    results = predict_batch(threshold_predictor(3, label_values=(0, 300)), folder, out, report=str(out / REPORT_NAME))
    assert all(r.ok for r in results)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert {
        "schema",
        "versions",
        "device",
        "model",
        "infer",
        "inputs_total",
        "inputs_sha256",
        "summary",
        "cases",
        "status",
    } <= set(manifest)
    assert {"torch", "monai", "numpy", "nibabel", "SimpleITK", "python"} <= set(manifest["versions"])
    assert manifest["device"]["network"] == "cpu" and manifest["status"] == "finished"
    assert len(manifest["model"]["weights_sha256"]) == 64 and len(manifest["model"]["config_sha256"]) == 64
    by_name = {Path(r["input"]).name: r for r in manifest["cases"]}
    voxel_ml = np.prod(SPACING) / 1000
    two_rec = by_name["two.nii.gz"]
    assert set(two_rec) >= {"input", "output", "shape", "spacing", "seconds", "labels", "sha256", "error", "flags"}
    assert two_rec["shape"] == [20, 24, 12] and two_rec["spacing"] == pytest.approx(SPACING)
    assert two_rec["labels"]["300"] == {
        "name": "class_300",
        "count": 352,
        "volume_ml": pytest.approx(352 * voxel_ml),
        "components": 2,
    }
    assert two_rec["sha256"] == file_sha256(two_rec["output"]) and two_rec["flags"] == []
    stages = two_rec["stage_seconds"]  # where the case's time went; reading may run ahead in another thread
    assert set(stages) == {"read", "read_wait", "network", "stitching", "write", "statistics"}
    assert min(stages.values()) >= 0 and stages["network"] > 0 and stages["read"] > 0
    assert sum(v for k, v in stages.items() if k != "read") <= two_rec["seconds"] + 1e-3
    assert by_name["many.nii.gz"]["labels"]["300"]["components"] == 126 and by_name["many.nii.gz"]["flags"] == [
        "many_components"
    ]
    assert by_name["empty.nii.gz"]["flags"] == ["empty", "input_warning"]  # an all-zero image: constant
    assert "the image is constant" in by_name["empty.nii.gz"]["warnings"][0]
    assert nib.load(two_rec["output"]).get_data_dtype() == np.uint16  # label value 300 does not fit uint8
    assert set(np.unique(np.asarray(nib.load(two_rec["output"]).dataobj))) == {0, 300}

    page = (out / REPORT_NAME).read_text()
    assert page.count("<tr class=") == 3 and 'class="flag empty"' in page and "many components" in page
    thumbs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(thumbs) == 3
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0]))) as png:
        assert png.format == "PNG" and png.height >= 100 and png.width > 2 * png.height  # three panels side by side


def test_statistics_helpers():
    mask = np.zeros((6, 7), np.uint8)
    mask[0, 0] = mask[2, 2] = mask[3, 3] = 1  # diagonal neighbours: 2 components with 8-connectivity
    stats = mask_statistics(mask, (1.0, 1.0), {1: "a", 2: "b"})
    assert stats == {"1": {"name": "a", "count": 3, "components": 2}, "2": {"name": "b", "count": 0, "components": 0}}
    assert case_flags(stats, many_components=1) == ["many_components"]
    assert case_flags({"1": {"count": 0, "components": 0}}) == ["empty"]


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.uint16, np.int16])
def test_value_counts_match_unique_in_any_layout(dtype):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2 if dtype == np.bool_ else 5, size=(9, 8, 7))
    values[0, 0, 0] = 1
    for array in (values.astype(dtype), np.asfortranarray(values.astype(dtype)), values.astype(dtype)[:, ::2]):
        expected = dict(zip(*(v.tolist() for v in np.unique(array, return_counts=True))))
        assert value_counts(array) == {int(k): v for k, v in expected.items()}
        array.flags.writeable = False  # read-only (a memory-mapped mask): the same counts, no warning
        assert value_counts(array) == {int(k): v for k, v in expected.items()}


# ---------------------------------------------------------------------------------------------- engines
@pytest.mark.parametrize(
    "size,roi,mode",
    [
        ((37, 20), (16, 16), "gaussian"),
        ((9, 50), (16, 16), "constant"),
        ((30, 17, 12), (8, 8, 16), "gaussian"),
        ((5, 40, 33), (8, 12, 10), "constant"),
    ],
)
def test_slab_stitching_equals_monai_sliding_window(size, roi, mode):
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    net = (torch.nn.Conv2d if len(size) == 2 else torch.nn.Conv3d)(2, 3, 3, padding=1)
    image = torch.randn(2, *size)
    with torch.no_grad():
        reference = sliding_window_inference(image[None], roi, 3, net, overlap=0.5, mode=mode)[0]
        for axis in range(len(size)):
            recorder = SlabRecorder()
            sliding_window_stitch(
                image,
                net,
                recorder,
                roi,
                overlap=0.5,
                sw_batch_size=3,
                mode=mode,
                axis=axis,
            )
            parts = recorder.finalize()
            assert [p[0] for p in parts] == sorted(p[0] for p in parts) and parts[-1][1] == size[axis]
            stitched = torch.cat([p[2] for p in parts], dim=1).movedim(1, axis + 1)
            torch.testing.assert_close(stitched, reference, atol=1e-5, rtol=1e-5)


def test_lean_spacing_equals_monai_spacingd_and_inverse_maps_back(tmp_path):
    from monai.data import MetaTensor
    from monai.transforms import Compose, EnsureChannelFirstd, Invertd, Orientationd, Spacingd

    path = tmp_path / "v.nii.gz"
    rng = np.random.default_rng(1)
    nib.save(
        nib.Nifti1Image(
            rng.normal(size=(33, 41, 17)).astype(np.float32),
            ras_affine(rotation(12) @ np.diag([-1.0, 1, 1]), (0.83, 0.91, 2.7)),
        ),
        str(path),
    )
    chain = [image_loader(("image",)), EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS")]
    item = Compose(chain)({"image": str(path)})
    pixdim = (1.1, 1.05, 1.3)
    full = Compose(chain + [Spacingd("image", pixdim=pixdim, mode="bilinear")])
    reference = full({"image": str(path)})
    lean = lean_spacing(item["image"], pixdim)
    assert lean.shape == reference["image"].shape
    np.testing.assert_allclose(np.asarray(lean.affine), np.asarray(reference["image"].affine), atol=1e-6)
    torch.testing.assert_close(lean.as_tensor(), reference["image"].as_tensor(), atol=1e-4, rtol=1e-4)

    image = reference["image"]
    labels = torch.as_tensor(rng.integers(0, 3, size=image.shape)).float()
    pred = MetaTensor(labels, meta=dict(image.meta), applied_operations=list(image.applied_operations))
    monai_back = Invertd("pred", transform=full, orig_keys="image", nearest_interp=True)({**reference, "pred": pred})[
        "pred"
    ]
    ours = labels_to_source_grid(
        labels[0].numpy().astype(np.uint8),
        np.asarray(image.affine),
        np.asarray(image.meta["original_affine"]),
        (33, 41, 17),
    )
    assert ours.dtype == np.uint8 and ours.shape == (33, 41, 17)
    assert (ours == monai_back[0].numpy().round()).mean() > 0.999  # ties (exactly half-way) may round either way


def test_non_axis_aligned_inverse_uses_nearest_points():
    labels = np.arange(6 * 5 * 4, dtype=np.uint8).reshape(6, 5, 4)
    grid = np.eye(4)
    source = np.eye(4)
    source[:3, :3] = rotation(30.0)
    ours = labels_to_source_grid(labels, grid, source, (4, 4, 3))
    ties = 0
    for index in np.ndindex(4, 4, 3):
        position = rotation(30.0) @ np.asarray(index, float)
        # every nearest grid point (two where a coordinate lies exactly half-way: sin 30 degrees = 0.5)
        candidates = [np.floor(position + 0.5), np.ceil(position - 0.5)]
        allowed = {int(labels[tuple(np.clip(c, 0, np.asarray(labels.shape) - 1).astype(int))]) for c in candidates}
        ties += len(allowed) > 1
        assert int(ours[index]) in allowed, (index, position)
    assert ties == 3  # the voxels (1, 0, k) sit exactly between two grid points


class RecordingNet(ThresholdNet):
    """The threshold network, keeping every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return super().forward(x)


@pytest.mark.parametrize(
    "flip_axes, expected_flips", [(None, [(), (2,), (3,), (2, 3)]), ((1,), [(), (3,)]), ((), [()])]
)
def test_tta_flips_only_the_axes_training_mirrored(tmp_path, flip_axes, expected_flips):
    image = np.zeros((32, 32), np.uint8)
    image[2:12, 4:20] = 200  # asymmetric, so every flip gives a different window
    source = tmp_path / "slice.png"
    Image.fromarray(image).save(source)
    net = RecordingNet()
    config = threshold_predictor(2, flip_axes=flip_axes).config
    predictor = Predictor(net, dataclasses.replace(config, infer=dataclasses.replace(config.infer, tta_flips=True)))
    np.testing.assert_array_equal(
        predictor.predict_image(source), np.where(image > 128, 255, 0)
    )  # binary PNG masks: 0/255
    window = torch.as_tensor(image / 200.0, dtype=torch.float32)[None, None]
    assert len(net.inputs) == len(expected_flips)
    for seen, dims in zip(net.inputs, expected_flips):
        torch.testing.assert_close(seen[:1], torch.flip(window, dims) if dims else window)


def test_tta_and_post_processing(tmp_path):
    image = np.full((48, 64), 10, np.uint8)
    image[4:30, 4:30] = 240  # a big square with a hole
    image[12:18, 12:18] = 10
    image[36:42, 40:46] = 240  # and a small separate square
    source = tmp_path / "in" / "shapes.png"
    source.parent.mkdir()
    Image.fromarray(image).save(source)
    plain = threshold_predictor(2)
    base = plain.predict_image(source)
    np.testing.assert_array_equal(base, np.where(image > 128, 255, 0))
    np.testing.assert_array_equal(
        plain.with_infer(tta_flips=True).predict_image(source), base
    )  # threshold is flip-equivariant
    largest = plain.with_infer(keep_largest_component=True).predict_image(source)
    assert largest[38, 42] == 0 and largest[5, 5] == 255 and largest[14, 14] == 0
    filled = plain.with_infer(fill_holes=True).predict_image(source)
    assert filled[14, 14] == 255 and filled[38, 42] == 255
    despeckled = plain.with_infer(min_component_size=37).predict_image(source)  # the small square has 36 pixels
    assert despeckled[38, 42] == 0 and despeckled[5, 5] == 255 and despeckled[14, 14] == 0
    np.testing.assert_array_equal(plain.with_infer(min_component_size=36).predict_image(source), base)
    with pytest.raises(ValueError, match="min_component_size must be >= 0, got -1"):
        InferConfig(min_component_size=-1)
    both = plain.with_infer(keep_largest_component=True, fill_holes=True)
    result = predict_case(both, source, tmp_path / "out")
    assert result.labels["255"]["components"] == 1 and result.labels["255"]["count"] == 26 * 26


# ---------------------------------------------------------------------------------------------- memory
@pytest.mark.slow
def test_ct_sized_volume_stays_within_memory_bound(tmp_path):
    """512x512x400 CT, resampled to 1.5x1.5x2 mm, 3 classes: peak RSS of the whole process below 3 GiB."""
    from medseg_monai.data.synthetic_3d import make_synthetic_3d

    make_synthetic_3d(tmp_path / "ct", n_cases=1, shape=(512, 512, 400), modality="ct")
    code = f"""
import torch
from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, RuntimeConfig
from medseg_monai.batch import predict_case
from medseg_monai.inference import Predictor
from medseg_monai.networks import build_network
torch.manual_seed(0)
cfg = RunConfig(data=DataConfig(spatial_dims=3, patch_size=(96, 96, 96), in_channels=1, label_values=(0, 1, 2),
                                intensity="ct", target_spacing=(1.5, 1.5, 2.0)),
                model=ModelConfig(name="unet",
                                  options={{"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1}}),
                infer=InferConfig(sw_batch_size=4, overlap=0.25), runtime=RuntimeConfig(device="cpu"))
predictor = Predictor(build_network(cfg, load_pretrained=False), cfg)
result = predict_case(predictor, "{tmp_path}/ct/imagesTr/case_000.nii.gz", "{tmp_path}/out")
assert result.status == "written", result.error
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_gib = int(done.stdout.strip().splitlines()[-1]) / 2**20
    assert peak_gib < 3.0, f"peak RSS {peak_gib:.2f} GiB"
