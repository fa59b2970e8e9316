"""Metrics: exact values on hand-made masks, folder matching, CSV/JSON outputs."""

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medseg_monai.evaluation import case_metrics, evaluate_folders, overlap_metrics


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


def test_one_rule_for_empty_cases():
    absent = overlap_metrics(0, 0, 0, 16)  # in neither prediction nor truth
    assert all(math.isnan(absent[m]) for m in ("dice", "iou", "precision", "recall")) and absent["accuracy"] == 1.0
    missed = overlap_metrics(0, 0, 5, 11)  # in the truth, nothing predicted: a miss counts against precision too
    assert missed["dice"] == missed["iou"] == missed["precision"] == missed["recall"] == 0.0
    invented = overlap_metrics(0, 5, 0, 11)  # predicted where the truth is empty: nothing to recall
    assert invented["dice"] == invented["precision"] == 0.0 and math.isnan(invented["recall"])
    assert overlap_metrics(3, 1, 2, 10) == pytest.approx(
        {"dice": 6 / 9, "iou": 3 / 6, "precision": 3 / 4, "recall": 3 / 5, "accuracy": 13 / 16}
    )
    assert math.isnan(overlap_metrics(0, 0, 0, 0)["accuracy"])  # an empty region of interest


def test_rows_carry_counts_and_cases_are_scored_one_at_a_time(tmp_path, monkeypatch):
    from medseg_monai.evaluation import folders

    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    for i in range(3):
        truth = np.zeros((8, 8), np.uint8)
        truth[: 2 + i, :4] = 255
        Image.fromarray(truth).save(truth_dir / f"c{i}_mask.png")
        Image.fromarray(np.roll(truth, 1, axis=1)).save(pred_dir / f"c{i}.png")
    loaded = []
    real_load = folders.load_image

    def counting_load(path, *args, **kwargs):
        loaded.append(Path(path).name)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(folders, "load_image", counting_load)
    result = evaluate_folders(pred_dir, truth_dir)
    assert loaded == [
        "c0_mask.png",
        "c0.png",
        "c1_mask.png",
        "c1.png",
        "c2_mask.png",
        "c2.png",
    ]  # truth, prediction, next case
    for i, row in enumerate(result.rows):
        side = 2 + i
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (3 * side, side, side, 64 - 5 * side)
        assert row["dice"] == pytest.approx(2 * 3 / 8)
        assert row["truth_voxels"] == row["tp"] + row["fn"] and row["pred_voxels"] == row["tp"] + row["fp"]


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
