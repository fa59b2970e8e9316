"""Probability and entropy maps beside the masks (source geometry, agreement with the mask) and label statistics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medseg_monai.batch.runner import run_batch
from medseg_monai.config import BatchOptions
from medseg_monai.errors import ConfigError
from medseg_monai.inference.maps import MapRequest, entropy_nats
from medseg_monai.io.label_statistics import STATISTICS_COLUMNS, label_statistics
from tests.helpers import threshold_predictor

QUIET = {"progress": False, "read_ahead": False}


def _argmax_agrees(probs: np.ndarray, mask: np.ndarray, values: tuple[int, ...]) -> float:
    """Share of voxels without a tie for the top class where the map's argmax is the mask's value."""
    ordered = np.sort(probs.astype(np.float32), axis=0)
    clear = ordered[-1] > ordered[-2]
    assert clear.mean() > 0.9  # ties are rare: the comparison covers the image
    return float((np.asarray(values)[probs.argmax(axis=0)] == mask)[clear].mean())


def _sitk_geometry(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    n = 3
    direction = np.asarray(image.GetDirection()).reshape(image.GetDimension(), -1)[:n, :n]
    return np.asarray(image.GetSpacing()[:n]), np.asarray(image.GetOrigin()[:n]), direction


@pytest.mark.parametrize("case", ["case_000", "case_001"])  # case_001 is oblique: labels go back nearest-neighbour
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_probability_maps_are_in_the_source_geometry_and_their_argmax_is_the_mask(synth_3d, tmp_path, case, dtype):
    predictor = threshold_predictor(3, target_spacing=(1.5, 1.5, 2.0))
    source = synth_3d / "imagesTr" / f"{case}.nii.gz"
    (result,) = run_batch(
        predictor, source, tmp_path, BatchOptions(save_probabilities=True, probabilities_dtype=dtype, **QUIET)
    )
    probs_path = tmp_path / f"{case}_probabilities.nii.gz"
    maps, src, mask = nib.load(probs_path), nib.load(source), np.asarray(nib.load(result.output).dataobj)
    assert maps.shape == (*src.shape, 2) and maps.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_allclose(maps.affine, src.affine, atol=1e-6)
    for got, want in zip(_sitk_geometry(probs_path), _sitk_geometry(source)):  # SimpleITK reads the same grid
        np.testing.assert_allclose(got, want, atol=1e-5)
    probs = np.moveaxis(np.asarray(maps.dataobj), -1, 0)
    assert 0 < mask.mean() < 1 and _argmax_agrees(probs, mask, (0, 1)) == 1.0
    total = probs.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(total, 255 if dtype == "uint8" else 1.0, atol=1 if dtype == "uint8" else 1e-5)
    record = json.loads((tmp_path / "predict_manifest.json").read_text())["cases"][0]
    assert record["probabilities"]["classes"] == [0, 1] and record["probabilities"]["scale"] == (
        255 if dtype == "uint8" else 1
    )


def test_mha_maps_are_vector_images_with_the_source_grid(synth_3d, tmp_path):
    source = tmp_path / "in" / "scan.mha"
    source.parent.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(synth_3d / "imagesTr" / "case_001.nii.gz")), str(source))
    predictor = threshold_predictor(3)
    run_batch(predictor, source, tmp_path / "out", BatchOptions(save_probabilities=True, **QUIET))
    maps, src = sitk.ReadImage(str(tmp_path / "out" / "scan_probabilities.mha")), sitk.ReadImage(str(source))
    assert maps.GetNumberOfComponentsPerPixel() == 2 and maps.GetSize() == src.GetSize()
    np.testing.assert_allclose(maps.GetDirection(), src.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(maps.GetOrigin(), src.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(maps.GetSpacing(), src.GetSpacing(), atol=1e-6)
    probs = np.moveaxis(sitk.GetArrayFromImage(maps), -1, 0)  # (K, z, y, x)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "scan.mha")))
    assert _argmax_agrees(probs, mask, (0, 1)) == 1.0


def test_raster_maps_are_multi_page_tifs_of_the_source_size(synth_2d, tmp_path):
    predictor = threshold_predictor(2)
    source = synth_2d / "case_000.png"
    run_batch(predictor, source, tmp_path, BatchOptions(save_probabilities=True, **QUIET))
    pages = Image.open(tmp_path / "case_000_probabilities.tif")
    probs = []
    for i in range(pages.n_frames):
        pages.seek(i)
        probs.append(np.asarray(pages))
    mask = np.asarray(Image.open(tmp_path / "case_000.png"))
    assert len(probs) == 2 and probs[0].shape == mask.shape == np.asarray(Image.open(source)).shape[:2]
    assert _argmax_agrees(np.stack(probs), mask, (0, 255)) == 1.0


def test_entropy_is_that_of_the_flip_averaged_probabilities_and_flags_uncertain_cases(synth_3d, tmp_path):
    predictor = threshold_predictor(3, flip_axes=(0, 1)).with_infer(tta_flips=True)
    source = synth_3d / "imagesTr" / "case_000.nii.gz"
    options = BatchOptions(
        save_probabilities=True,
        probabilities_dtype="float32",
        save_uncertainty=True,
        high_entropy=0.0,
        report=str(tmp_path / "report.html"),
        **QUIET,
    )
    (result,) = run_batch(predictor, source, tmp_path, options)
    entropy_img = nib.load(tmp_path / "case_000_entropy.nii.gz")
    np.testing.assert_allclose(entropy_img.affine, nib.load(source).affine, atol=1e-6)
    entropy = np.asarray(entropy_img.dataobj)
    probs = np.moveaxis(np.asarray(nib.load(tmp_path / "case_000_probabilities.nii.gz").dataobj), -1, 0)
    np.testing.assert_allclose(entropy, entropy_nats(probs), atol=1e-5)
    assert entropy.dtype == np.float32 and entropy.max() > 0.1  # the threshold network is unsure near 0.5
    mask = np.asarray(nib.load(result.output).dataobj)
    record = json.loads((tmp_path / "predict_manifest.json").read_text())["cases"][0]
    assert record["entropy"]["mean_foreground"] == pytest.approx(float(entropy[mask > 0].mean()), rel=1e-5)
    page = (tmp_path / "report.html").read_text()
    assert "high_uncertainty" in record["flags"] and "high uncertainty" in page and "mean foreground entropy" in page


def test_uncertainty_without_flips_and_maps_with_full_stitching_are_refused(synth_3d, tmp_path):
    source = synth_3d / "imagesTr" / "case_000.nii.gz"
    with pytest.raises(ConfigError, match="tta-flips"):
        run_batch(threshold_predictor(3), source, tmp_path, BatchOptions(save_uncertainty=True, **QUIET))
    with pytest.raises(ConfigError, match="stitching='slab'"):
        run_batch(
            threshold_predictor(3).with_infer(stitching="full"),
            source,
            tmp_path,
            BatchOptions(save_probabilities=True, **QUIET),
        )
    assert not list(tmp_path.iterdir())  # refused before any output


def test_a_case_lacking_a_map_is_predicted_again(synth_3d, tmp_path):
    predictor = threshold_predictor(3)
    source = synth_3d / "imagesTr" / "case_000.nii.gz"
    assert run_batch(predictor, source, tmp_path, BatchOptions(**QUIET))[0].status == "written"
    assert run_batch(predictor, source, tmp_path, BatchOptions(**QUIET))[0].status == "skipped"
    again = run_batch(predictor, source, tmp_path, BatchOptions(save_probabilities=True, **QUIET))[0]
    assert again.status == "written" and (tmp_path / "case_000_probabilities.nii.gz").is_file()
    kept = run_batch(predictor, source, tmp_path, BatchOptions(save_probabilities=True, **QUIET))[0]
    assert kept.status == "skipped" and "probabilities" in kept.extras


def test_label_statistics_of_a_known_cube():
    mask = np.zeros((10, 12, 8), dtype=np.uint8)
    mask[2:5, 3:9, 0:4] = 1  # 3 x 6 x 4 = 72 voxels, touching the z = 0 face
    mask[7, 10, 5] = 2
    image = np.full(mask.shape, -1000.0)
    image[2:5, 3:9, 0:4] = np.arange(72, dtype=float).reshape(3, 6, 4)
    image[7, 10, 5] = 40.0
    affine = np.diag([2.0, 0.5, 3.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    rows = {
        row["label"]: row
        for row in label_statistics(mask, image, affine, (2.0, 0.5, 3.0), {1: "liver", 2: "spleen", 3: "kidney"})
    }
    cube = rows[1]
    assert cube["name"] == "liver" and cube["voxels"] == 72 and cube["volume_ml"] == pytest.approx(72 * 3.0 / 1000)
    assert (
        cube["mean"] == pytest.approx(35.5)
        and cube["median"] == pytest.approx(35.5)
        and cube["min"] == 0
        and cube["max"] == 71
    )
    assert cube["std"] == pytest.approx(np.arange(72).std(), abs=1e-4)
    assert (cube["bbox_min_x"], cube["bbox_max_x"], cube["bbox_min_z"], cube["bbox_max_z"]) == (2, 4, 0, 3)
    assert (cube["bbox_size_mm_x"], cube["bbox_size_mm_y"], cube["bbox_size_mm_z"]) == (6.0, 3.0, 12.0)
    ras = affine @ np.array([3.0, 5.5, 1.5, 1.0])
    assert (cube["centroid_x"], cube["centroid_y"], cube["centroid_z"]) == pytest.approx((-ras[0], -ras[1], ras[2]))
    assert cube["components"] == 1 and cube["touches_border"] is True
    assert rows[2]["voxels"] == 1 and rows[2]["mean"] == 40.0 and rows[2]["touches_border"] is False
    assert rows[3]["voxels"] == 0 and rows[3]["mean"] is None and rows[3]["components"] == 0


def test_statistics_csv_and_manifest_hold_the_same_numbers(synth_3d, tmp_path):
    predictor = threshold_predictor(3)
    sources = [synth_3d / "imagesTr" / f"case_00{i}.nii.gz" for i in range(2)]
    run_batch(predictor, sources, tmp_path, BatchOptions(statistics=True, **QUIET))
    with open(tmp_path / "predict_statistics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == STATISTICS_COLUMNS
        rows = list(reader)
    assert [Path(r["case"]).name for r in rows] == ["case_000.nii.gz", "case_001.nii.gz"]
    records = json.loads((tmp_path / "predict_manifest.json").read_text())["cases"]
    for row, record, source in zip(rows, records, sources):
        stats = record["statistics"][0]
        assert int(row["voxels"]) == stats["voxels"] == record["labels"]["1"]["count"]
        mask = np.asarray(nib.load(tmp_path / source.name).dataobj)
        image = nib.load(source).get_fdata()
        assert float(row["mean"]) == pytest.approx(image[mask == 1].mean(), abs=1e-4)
        assert float(row["volume_ml"]) == pytest.approx(
            mask.sum() * np.prod(nib.load(source).header.get_zooms()[:3]) / 1000
        )
    again = run_batch(predictor, sources, tmp_path, BatchOptions(statistics=True, **QUIET))
    assert {r.status for r in again} == {"skipped"} and (tmp_path / "predict_statistics.csv").read_text().count(
        "\n"
    ) == 3


def test_predict_maps_api_returns_the_mask_and_maps(synth_3d):
    predictor = threshold_predictor(3)
    prepared = predictor.prepare(synth_3d / "imagesTr" / "case_000.nii.gz")
    maps = predictor.predict_maps(prepared, MapRequest(probabilities="float32"))
    np.testing.assert_array_equal(maps.mask, predictor.predict_prepared(prepared))
    assert maps.probabilities.shape == (2, *maps.mask.shape) and maps.entropy is None


def _two_blob_volume(path: Path) -> Path:
    """A 96 x 40 x 24 volume, zero but for a bright block at each end along x: the foreground box holds it all, but
    the windows in the middle hold no foreground and are left out."""
    data = np.zeros((96, 40, 24), dtype=np.float32)
    rng = np.random.default_rng(0)
    data[0:8, 10:30, 4:20] = rng.uniform(0.2, 1.0, (8, 20, 16))
    data[88:96, 10:30, 4:20] = rng.uniform(0.2, 1.0, (8, 20, 16))
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


@pytest.mark.parametrize("inversion", ["linear", "labels"])
@pytest.mark.parametrize("tta", [False, True])
def test_where_no_window_ran_the_maps_say_certain_background(tmp_path, inversion, tta):
    source = _two_blob_volume(tmp_path / "blobs.nii.gz")
    predictor = threshold_predictor(3, flip_axes=(0,)).with_infer(
        foreground_crop="nonzero", inversion=inversion, tta_flips=tta
    )
    prepared = predictor.prepare(source)
    assert prepared.region is not None and prepared.region.slices[0] == slice(0, 96)  # the box holds the middle
    maps = predictor.predict_maps(prepared, MapRequest(probabilities="float32", entropy=tta))
    middle = np.zeros(maps.mask.shape, dtype=bool)
    middle[44:52] = True  # no window holding it ran
    np.testing.assert_allclose(maps.probabilities[0][middle], 1.0, atol=1e-6)
    np.testing.assert_allclose(maps.probabilities.sum(axis=0), 1.0, atol=1e-5)
    if tta:
        assert float(maps.entropy[middle].max()) < 1e-6


def test_flips_without_mirrored_axes_still_give_probabilities_and_no_uncertainty(synth_3d, tmp_path):
    predictor = threshold_predictor(3, flip_axes=()).with_infer(tta_flips=True)
    assert predictor.tta_passes == 1
    maps = predictor.predict_maps(predictor.prepare(synth_3d / "imagesTr" / "case_000.nii.gz"), MapRequest("float32"))
    assert maps.probabilities.min() >= 0 and np.allclose(maps.probabilities.sum(axis=0), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="mirrored no axis"):
        run_batch(
            predictor, synth_3d / "imagesTr" / "case_000.nii.gz", tmp_path, BatchOptions(save_uncertainty=True, **QUIET)
        )


def test_a_changed_probability_type_predicts_again(synth_3d, tmp_path):
    predictor = threshold_predictor(3)
    source = synth_3d / "imagesTr" / "case_000.nii.gz"
    run_batch(predictor, source, tmp_path, BatchOptions(save_probabilities=True, **QUIET))
    again = run_batch(
        predictor, source, tmp_path, BatchOptions(save_probabilities=True, probabilities_dtype="float32", **QUIET)
    )[0]
    assert again.status == "written"
    assert nib.load(tmp_path / "case_000_probabilities.nii.gz").get_data_dtype() == np.float32


def test_a_case_whose_map_cannot_be_written_leaves_no_mask(synth_3d, tmp_path, monkeypatch):
    import medseg_monai.batch.case_outputs as case_outputs

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(case_outputs, "write_probability_map", full_disk)
    (result,) = run_batch(
        threshold_predictor(3),
        synth_3d / "imagesTr" / "case_000.nii.gz",
        tmp_path,
        BatchOptions(save_probabilities=True, manifest=False, **QUIET),
    )
    assert result.status == "failed" and "No space left" in result.error
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("dims", [2, 3])
def test_a_kept_case_without_an_earlier_record_gets_its_map_entries_from_the_files(synth_2d, synth_3d, tmp_path, dims):
    predictor = threshold_predictor(dims, flip_axes=(0,)).with_infer(tta_flips=True)
    source = synth_2d / "case_000.png" if dims == 2 else synth_3d / "imagesTr" / "case_000.nii.gz"
    options = {"save_probabilities": True, "save_uncertainty": True, "high_entropy": 0.0, **QUIET}
    (first,) = run_batch(predictor, source, tmp_path, BatchOptions(manifest=False, **options))
    (kept,) = run_batch(predictor, source, tmp_path, BatchOptions(**options))
    assert kept.status == "skipped"
    record = json.loads((tmp_path / "predict_manifest.json").read_text())["cases"][0]
    assert record["probabilities"] == first.extras["probabilities"]
    assert record["entropy"]["mean_foreground"] == pytest.approx(first.extras["entropy"]["mean_foreground"], rel=1e-5)
    assert "high_uncertainty" in record["flags"]
