"""DICOM SEG masks of DICOM series (oblique, shuffled files), folders of several series, localizers and zips."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from medseg_monai.cli import main
from medseg_monai.config import DataConfig, InferConfig, RunConfig, RuntimeConfig
from medseg_monai.data import collect_inputs
from medseg_monai.errors import InputError
from medseg_monai.inference import Predictor
from medseg_monai.io import detect_format, is_complete, load_image, mask_filename, read_geometry, write_mask
from medseg_monai.io.dicom import DicomSeries
from medseg_monai.io.dicom_series import dicom_series_files
from medseg_monai.io.seg_files import SEGMENTATION_STORAGE, seg_label_map
from medseg_monai.io.snomed import GENERIC, LABEL_CODES, normalise_label, property_codes
from tests.dicom_helpers import MRSeries, write_localizer, write_mr_series, zip_folder
from tests.helpers import predict_batch

SHAPE = (24, 20, 10)  # (X, Y, Z): columns, rows, slices


def _phantom(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """An MR-like volume: dim noisy background, a bright ellipsoid with a brighter core (three intensity bands)."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    radius = sum(g**2 for g in grids)
    noise = np.random.default_rng(seed).integers(0, 40, shape)
    return (100 + 500 * (radius < 0.55) + 400 * (radius < 0.15) + noise).astype(np.uint16)


class BandNet(torch.nn.Module):
    """Class 1 where the min-max normalised image is in (0.35, 0.75], class 2 above; class 3 never."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :1]
        return torch.cat([0.35 - v, torch.minimum(v - 0.35, 0.75 - v), v - 0.75, torch.full_like(v, -10.0)], dim=1) * 20


def band_predictor(**infer) -> Predictor:
    config = RunConfig(
        data=DataConfig(
            spatial_dims=3,
            patch_size=(16, 16, 8),
            in_channels=1,
            label_values=(0, 1, 2, 3),
            label_names=("background", "Liver", "tumour", "spleen"),
            intensity="minmax",
        ),
        infer=InferConfig(overlap=0.5, sw_batch_size=2, **infer),
        runtime=RuntimeConfig(device="cpu"),
    )
    return Predictor(BandNet(), config)


def _series(tmp_path: Path, name: str = "mr", **kw) -> MRSeries:
    seed = kw.pop("seed", 1)
    return write_mr_series(tmp_path / "in" / name, _phantom(seed=seed), seed=seed, **kw)


def _hashes(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(ds) -> list[tuple[str, np.ndarray, int]]:
    """(source SOP instance, position, segment number) of every frame."""
    return [
        (
            f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
            np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]),
            int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
        )
        for f in ds.PerFrameFunctionalGroupsSequence
    ]


def assert_seg_of(seg_path: Path, series: MRSeries) -> pydicom.Dataset:
    """The SEG lies in the series' study and frame of reference, references it, and every frame its own slice."""
    ds = pydicom.dcmread(str(seg_path))
    assert ds.Modality == "SEG" and ds.SOPClassUID == SEGMENTATION_STORAGE and ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == series.study_uid and ds.FrameOfReferenceUID == series.frame_of_reference_uid
    assert ds.SeriesInstanceUID != series.series_uid
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    sources = {pydicom.dcmread(str(f)).SOPInstanceUID: pydicom.dcmread(str(f)) for f in series.files}
    assert {i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == set(
        sources
    )
    shared = ds.SharedFunctionalGroupsSequence[0]
    first = next(iter(sources.values()))
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in first.ImageOrientationPatient],
        atol=1e-7,
    )
    measures = shared.PixelMeasuresSequence[0]
    np.testing.assert_allclose([float(v) for v in measures.PixelSpacing], [float(v) for v in first.PixelSpacing])
    assert float(measures.SliceThickness) == float(first.SliceThickness)
    assert (ds.Rows, ds.Columns) == (first.Rows, first.Columns)
    for uid, position, _ in _frames(ds):  # each frame lies on the source slice it references
        np.testing.assert_allclose(position, [float(v) for v in sources[uid].ImagePositionPatient], atol=1e-5)
    return ds


def assert_same_grid(a, b) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-6)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.direction), np.asarray(b.direction), atol=1e-6)


# ---------------------------------------------------------------------------------------------- codes
def test_label_names_get_snomed_codes_by_exact_normalised_name():
    for name, codes in LABEL_CODES.items():
        category, kind, _ = codes.codes()
        assert category.scheme_designator == kind.scheme_designator == "SCT", name
    assert normalise_label(" Kidney_Left ") == "kidney left"
    category, kind, modifier = property_codes("Kidney_Left").codes()
    assert (category.value, kind.value, modifier.value) == ("91723000", "64033007", "7771000")
    assert property_codes("LIVER").codes()[1].value == "10200004"
    assert property_codes("hippocampus posterior").codes()[1].value == "5366008"
    assert property_codes("Tumour").codes()[:2] == property_codes("tumor").codes()[:2]
    assert property_codes("tumour").codes()[0].value == "49755003"  # morphologically abnormal structure
    for unknown in ("liver tumour", "anterior", "label_7", "kidneys left cyst", ""):  # no substring guesses
        assert property_codes(unknown) == GENERIC
    assert [c.value for c in GENERIC.codes()[:2]] == ["85756007", "85756007"]


# ---------------------------------------------------------------------------------------------- the SEG
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled-files"])
def test_seg_of_an_oblique_mr_series_equals_its_nifti_mask(tmp_path: Path, shuffle: bool) -> None:
    series = _series(tmp_path, shuffle=shuffle, seed=1 + int(shuffle))
    before = _hashes(series.folder)
    seg = predict_batch(band_predictor(), [series.folder], tmp_path / "seg")[0]
    nifti = predict_batch(band_predictor(output_format="nifti"), [series.folder], tmp_path / "nifti")[0]
    assert (seg.status, nifti.status) == ("written", "written"), (seg.error, nifti.error)
    assert seg.output.name == "mr.dcm" and nifti.output.name == "mr.nii.gz"
    ds = assert_seg_of(seg.output, series)

    segments = {int(s.SegmentNumber): s for s in ds.SegmentSequence}
    assert {n: s.SegmentLabel for n, s in segments.items()} == {1: "Liver", 2: "tumour", 3: "spleen"}
    for s in segments.values():
        assert s.SegmentAlgorithmType == "AUTOMATIC" and s.SegmentAlgorithmName == "medseg-monai"
        algorithm = s.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "medseg-monai" and algorithm.AlgorithmVersion == "0.1.0"
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"  # liver
    assert segments[2].SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert segments[3].SegmentedPropertyTypeCodeSequence[0].CodeValue == "78961009"  # spleen: described, no frame

    expected = np.asarray(nib.load(str(nifti.output)).dataobj)
    counts = {v: int((expected == v).sum()) for v in (1, 2, 3)}
    assert counts[1] > 50 and counts[2] > 10 and counts[3] == 0, counts  # the comparison means something
    frames = _frames(ds)
    assert len(frames) == len({(uid, n) for uid, _, n in frames}) < 3 * SHAPE[2]  # empty frames omitted
    assert {n for _, _, n in frames} == {1, 2}
    read = hd.seg.segread(str(seg.output))
    order = [pydicom.dcmread(str(f)).SOPInstanceUID for f in dicom_series_files(series.folder)]
    stacked = read.get_pixels_by_source_instance(order, combine_segments=False)  # (Z, Y, X, segments)
    for number in (1, 2, 3):
        np.testing.assert_array_equal(stacked[..., number - 1].transpose(2, 1, 0), expected == number)
    np.testing.assert_array_equal(seg_label_map(seg.output), expected)
    assert_same_grid(read_geometry(seg.output), read_geometry(series.folder))
    assert seg.labels["1"]["count"] == counts[1]
    assert _hashes(series.folder) == before

    assert is_complete(seg.output, series.folder, sidecar=True)
    again = predict_batch(band_predictor(), [series.folder], tmp_path / "seg", manifest=False)[0]
    assert again.status == "skipped" and again.labels["2"]["count"] == counts[2]  # statistics read back from the SEG
    other = _series(tmp_path, "other", seed=5)
    assert not is_complete(seg.output, other.folder)  # a SEG of another series is not this one's output
    assert tuple(load_image(seg.output, role="mask").shape) == SHAPE


def test_write_mask_seg_of_a_known_mask_and_refusals(tmp_path: Path) -> None:
    series = _series(tmp_path, shuffle=True)
    mask = np.zeros(SHAPE, np.uint8)
    mask[3:9, 4:7, 2] = 2  # one slice only, off-centre: the frame must land on slice 2
    mask[10, 11, 7] = 5
    out = write_mask(
        mask, series.folder, tmp_path / "out" / mask_filename(series.folder), label_names={0: "bg", 2: "liver"}
    )
    assert out.name == "mr.dcm"
    ds = assert_seg_of(out, series)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "label_5"]
    assert ds.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # generic tissue
    slice2 = pydicom.dcmread(str(series.files[2])).SOPInstanceUID
    assert [(uid, n) for uid, _, n in _frames(ds)][0] == (slice2, 1)
    np.testing.assert_array_equal(seg_label_map(out), mask)
    with pytest.raises(InputError, match=r"mr\.dcm: unsupported image format '\.dcm'"):
        detect_format(out)  # a SEG (any .dcm file) is an output, never an image to segment
    nifti = tmp_path / "scan.nii.gz"
    nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)).to_filename(str(nifti))
    with pytest.raises(InputError, match=r"scan\.nii\.gz: a DICOM SEG \('seg'\) needs a DICOM series source"):
        mask_filename(nifti, "seg")
    with pytest.raises(InputError, match=r"scan\.nii\.gz: a DICOM SEG"):
        write_mask(mask, nifti, tmp_path / "out" / "scan.dcm", output_format="seg")
    assert not (tmp_path / "out" / "scan.dcm").exists()


def test_medseg_predict_writes_a_seg_matching_its_nifti(run_3d, tmp_path: Path) -> None:
    series = _series(tmp_path)
    args = ["-q", "predict", "--model", str(run_3d.run_dir), "--input", str(series.folder), "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "seg")]) == 0
    assert main([*args, "--output", str(tmp_path / "nifti"), "--output-format", "nifti"]) == 0
    ds = pydicom.dcmread(str(tmp_path / "seg" / "mr.dcm"))
    assert ds.Modality == "SEG" and ds.StudyInstanceUID == series.study_uid
    assert ds.FrameOfReferenceUID == series.frame_of_reference_uid
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    nifti = np.asarray(nib.load(str(tmp_path / "nifti" / "mr.nii.gz")).dataobj)
    read = hd.seg.segread(str(tmp_path / "seg" / "mr.dcm"))
    names = Predictor.from_run(run_3d.run_dir).label_names(series.folder)
    order = [pydicom.dcmread(str(f)).SOPInstanceUID for f in dicom_series_files(series.folder)]
    stacked = read.get_pixels_by_source_instance(order, combine_segments=False)
    for number, item in enumerate(ds.SegmentSequence, start=1):
        value = next(v for v, n in names.items() if n == item.SegmentLabel)
        assert int(stacked[..., number - 1].sum()) == int((nifti == value).sum())
    assert (nifti > 0).sum() > 100  # the seeded tiny run finds foreground: the counts compared are not all zero


# ----------------------------------------------------------------------------------------- several series, localizers
def _two_series_folder(tmp_path: Path) -> tuple[Path, MRSeries, MRSeries]:
    folder = tmp_path / "in" / "study"
    t1 = write_mr_series(folder, _phantom(seed=1), series_number=3, description="T1 AX", prefix="A")
    t2 = write_mr_series(
        folder,
        _phantom(seed=2),
        series_number=4,
        description="T2/COR fs",
        prefix="B",
        study_uid=t1.study_uid,
        frame_of_reference_uid=t1.frame_of_reference_uid,
    )
    return folder, t1, t2


def test_a_folder_of_two_series_gives_one_seg_per_series(tmp_path: Path) -> None:
    folder, t1, t2 = _two_series_folder(tmp_path)
    sources = collect_inputs(folder)
    assert sources == [DicomSeries(folder, t1.series_uid).path, DicomSeries(folder, t2.series_uid).path]
    assert [mask_filename(s) for s in sources] == ["study_s003_T1_AX.dcm", "study_s004_T2_COR_fs.dcm"]
    results = predict_batch(band_predictor(), [folder], tmp_path / "out")
    assert [r.status for r in results] == ["written", "written"], [r.error for r in results]
    assert_seg_of(tmp_path / "out" / "study_s003_T1_AX.dcm", t1)
    assert_seg_of(tmp_path / "out" / "study_s004_T2_COR_fs.dcm", t2)
    assert_same_grid(read_geometry(sources[1]), read_geometry(tmp_path / "out" / "study_s004_T2_COR_fs.dcm"))

    picked = predict_batch(band_predictor(), [folder], tmp_path / "one", series=t2.series_uid)
    assert [r.output.name for r in picked] == ["study_s004_T2_COR_fs.dcm"]
    with pytest.raises(InputError, match=r"--series 1\.2\.3: no DICOM series with this SeriesInstanceUID .*study"):
        collect_inputs(folder, series="1.2.3")
    with pytest.raises(InputError, match=r"study: 2 DICOM series in one folder.*--series UID picks one"):
        load_image(folder)  # the folder itself, not one of its series


def test_localizer_slices_are_left_out_with_a_warning(tmp_path: Path, caplog) -> None:
    series = _series(tmp_path, shuffle=True)
    reference = read_geometry(series.folder)
    write_localizer(series.folder, series, name="LOC0001.dcm")
    write_localizer(series.folder, series, name="LOC0002.dcm")
    with caplog.at_level(logging.WARNING):
        files = dicom_series_files(series.folder)
    assert "mr: left out 2 localizer slice(s)" in caplog.text and "LOC0001.dcm" in caplog.text
    assert [Path(f).name for f in files] == [p.name for p in series.files]  # slice order
    assert_same_grid(read_geometry(series.folder), reference)
    result = predict_batch(band_predictor(), [series.folder], tmp_path / "out")[0]
    assert result.status == "written", result.error
    assert_seg_of(result.output, series)


def test_a_zip_of_a_series_is_read_and_its_extraction_removed(tmp_path: Path, monkeypatch) -> None:
    series = _series(tmp_path / "src")
    archive = zip_folder(series.folder, tmp_path / "in" / "case.zip", nested="DICOM/MR")
    before = hashlib.sha256(archive.read_bytes()).hexdigest()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert collect_inputs(archive) == [archive]
    result = predict_batch(band_predictor(), [archive], tmp_path / "out")[0]
    assert result.status == "written" and result.output.name == "case.dcm", result.error
    assert_seg_of(result.output, series)
    assert_same_grid(read_geometry(archive), read_geometry(series.folder))
    assert is_complete(result.output, archive)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == before
    assert not list(scratch.iterdir()), "temporary extraction left behind"


def test_each_series_of_a_folder_gets_its_maps_and_statistics(tmp_path: Path) -> None:
    from medseg_monai.batch.runner import run_batch
    from medseg_monai.config import BatchOptions

    folder, t1, t2 = _two_series_folder(tmp_path)
    options = BatchOptions(statistics=True, save_probabilities=True, progress=False, read_ahead=False)
    results = run_batch(band_predictor(), folder, tmp_path / "out", options)
    assert [r.status for r in results] == ["written", "written"], [r.error for r in results]
    for result, series in zip(results, (t1, t2)):
        stem = result.output.name.removesuffix(".dcm")
        probs = nib.load(str(tmp_path / "out" / f"{stem}_probabilities.nii.gz"))
        geometry = read_geometry(DicomSeries(folder, series.series_uid).path)
        assert probs.shape == (*geometry.shape, 4)
        np.testing.assert_allclose(probs.affine, np.asarray(geometry.affine_ras), atol=1e-4)
        mask = seg_label_map(result.output)
        assert (np.asarray(probs.dataobj).argmax(-1) == mask).mean() > 0.999
        assert result.extras["statistics"][0]["voxels"] == int((mask == 1).sum())
    rows = (tmp_path / "out" / "predict_statistics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 and "#series=" in rows[1]
