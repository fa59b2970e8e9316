"""Metrics: exact values on hand-made masks, folder matching, CSV/JSON outputs."""

import json
import math

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medseg_monai.evaluation import case_metrics, evaluate_folders


def test_case_metrics_exact_counts():
    truth = np.zeros((10, 10), int)
    pred = np.zeros((10, 10), int)
    truth[0:4, 0:5] = 1  # 20 px
    pred[0:4, 0:4] = 1  # 16 px, all inside truth
    pred[9, 9] = 2
    m = case_metrics(pred, truth, labels=[1, 2])
    assert m[1]["dice"] == pytest.approx(2 * 16 / 36)
    assert m[1]["iou"] == pytest.approx(16 / 20)
    assert m[1]["precision"] == 1.0 and m[1]["recall"] == pytest.approx(0.8)
    assert m[1]["accuracy"] == pytest.approx(96 / 100)
    assert m[2]["dice"] == 0.0 and math.isnan(m[2]["recall"])  # predicted where truth is empty


def test_class_absent_from_both_is_nan_not_perfect():
    empty = np.zeros((4, 4), int)
    assert math.isnan(case_metrics(empty, empty, [1])[1]["dice"])


def test_roi_restricts_counts_and_surface_distances_use_spacing():
    truth = np.zeros((20, 20, 6), int)
    truth[5:15, 5:15, 2:4] = 1
    pred = np.roll(truth, 1, axis=0)
    m = case_metrics(pred, truth, [1], spacing=(2.0, 1.0, 1.0), surface=True)
    assert m[1]["hd95"] == pytest.approx(2.0)
    roi = np.zeros_like(truth, bool)
    roi[:10] = True
    inside = case_metrics(pred, truth, [1], roi=roi)
    assert inside[1]["truth_voxels"] == 5 * 10 * 2
    with pytest.raises(ValueError, match="prediction shape"):
        case_metrics(pred[:5], truth, [1])


def test_evaluate_folders_matches_by_case_name_and_writes_outputs(tmp_path):
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        mask = (rng.random((16, 16)) > 0.5).astype(np.uint8) * 255
        Image.fromarray(mask).save(truth_dir / f"{name}_mask.png")
        if name != "c":
            Image.fromarray(mask).save(pred_dir / f"{name}.png")
    result = evaluate_folders(pred_dir, truth_dir, output_dir=tmp_path / "eval")
    assert result.summary["cases"] == 2 and result.summary["labels"] == [255]
    assert result.summary["missing_predictions"] == ["c"]
    assert result.mean("dice") == 1.0
    summary = json.loads((tmp_path / "eval" / "metrics_summary.json").read_text())
    assert summary["per_label"]["255"]["dice"]["mean"] == 1.0
    assert (tmp_path / "eval" / "metrics_per_case.csv").read_text().startswith("case,label,label_name,dice")


def test_evaluate_against_dataset_root_and_shape_mismatch_reported(tmp_path):
    root = tmp_path / "data"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for name, shape in (("x", (8, 8, 4)), ("y", (8, 8, 4))):
        label = np.zeros(shape, np.uint8)
        label[2:5, 2:5, 1:3] = 1
        nib.save(nib.Nifti1Image(label.astype(np.float32), np.eye(4)), root / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), root / "labelsTr" / f"{name}.nii.gz")
        pred = label if name == "x" else np.zeros((8, 8, 5), np.uint8)
        nib.save(nib.Nifti1Image(pred, np.eye(4)), pred_dir / f"{name}.nii.gz")
    result = evaluate_folders(pred_dir, root)
    assert result.mean("dice", label=1) == 1.0
    assert "y" in result.summary["errors"] and "shape" in result.summary["errors"]["y"]


def test_no_matching_names_is_an_error(tmp_path):
    (tmp_path / "p").mkdir(), (tmp_path / "t").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "p" / "one.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "t" / "two.png")
    with pytest.raises(ValueError, match="no prediction matches"):
        evaluate_folders(tmp_path / "p", tmp_path / "t")
