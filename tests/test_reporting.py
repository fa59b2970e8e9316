"""One palette, one intensity window, one slice choice: the views every figure and the QA page show."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from PIL import Image

from medseg_monai.reporting import CaseRow, colour_table, image_views, overlay, save_case_figure, window
from medseg_monai.reporting.render import ALPHA, PALETTE, volume_views


def test_a_label_keeps_its_colour_whether_or_not_other_labels_are_present():
    colours = colour_table((1, 2))
    assert colours == {1: PALETTE[0], 2: PALETTE[1]}
    image = np.full((6, 6), 100, np.uint8)
    only_two = np.zeros((6, 6), np.uint8)
    only_two[2:4, 2:4] = 2
    both = only_two.copy()
    both[0, 0] = 1
    for mask in (only_two, both):
        picture = overlay(image, mask, colours)
        expected = ((1 - ALPHA) * np.float32(100) + ALPHA * np.asarray(PALETTE[1], np.float32)).astype(np.uint8)
        np.testing.assert_array_equal(picture[2, 2], expected)
        np.testing.assert_array_equal(picture[5, 5], [100, 100, 100])
    assert colour_table((255,), present=[7, 255]) == {
        255: PALETTE[0],
        7: PALETTE[1],
    }  # unexpected values after the model's


def test_window_is_the_images_own_percentiles():
    image = np.arange(1000, dtype=np.float32).reshape(10, 100)
    shown = window(image)
    assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    assert shown[0, 3] == 0 and shown[9, 97] == 255  # below the 0.5th and above the 99.5th percentile: clipped
    np.testing.assert_array_equal(window(np.full((4, 4), 7.0)), 0)  # a constant image does not divide by zero


def test_volumes_are_shown_radiologically_whatever_their_stored_orientation():
    ras = np.zeros((20, 16, 10), np.float32)
    ras[17:19, 1:3, 4:6] = 1.0  # a marker on the patient's right (+x in RAS), posterior (low y)
    mask = (ras > 0).astype(np.uint8)
    views = volume_views(ras, [mask], np.eye(4))
    axial = views[0]
    rows, cols = np.nonzero(axial.masks[0])
    assert set(cols) == {1, 2} and set(rows) == {13, 14}  # right on the image's left, anterior up (posterior down)
    las = np.diag([-1.0, 1.0, 1.0, 1.0])  # the same anatomy stored with x running the other way
    flipped = volume_views(ras[::-1].copy(), [mask[::-1].copy()], las)
    for a, b in zip(views, flipped):
        np.testing.assert_array_equal(a.masks[0], b.masks[0])
        np.testing.assert_array_equal(a.image, b.image)
    assert [v.name for v in views] == ["axial", "coronal", "sagittal"]
    assert (axial.row_mm, axial.col_mm) == (1.0, 1.0)
    cut = volume_views(
        ras, [np.zeros_like(mask), mask], np.diag([0.5, 0.5, 3.0, 1.0])
    )  # the first non-empty mask picks the slice
    assert cut[0].masks[1].any() and (cut[1].row_mm, cut[1].col_mm) == (3.0, 0.5)


def test_case_figure_shows_what_the_qa_page_shows(tmp_path):
    volume = np.zeros((24, 20, 12), np.float32)
    volume[4:10, 5:12, 3:9] = 100
    truth = (volume > 0).astype(np.uint8)
    for name, array in (("image", volume), ("truth", truth), ("pred", truth * 2)):
        nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.0, 1.0])), tmp_path / f"{name}.nii.gz")
    views = image_views(volume, [truth], volume.shape, np.diag([0.8, 0.8, 2.0, 1.0]))
    assert views[0].image.dtype == np.uint8 and views[0].masks[0].any()
    path = save_case_figure(
        [CaseRow("case", tmp_path / "image.nii.gz", tmp_path / "truth.nii.gz", tmp_path / "pred.nii.gz")],
        tmp_path / "figure.png",
        label_values=(1, 2),
        title="check",
    )
    with Image.open(path) as png:
        rgb = np.asarray(png.convert("RGB"))
    assert png.format == "PNG"
    colours = {tuple(c) for c in rgb.reshape(-1, 3)}
    blended_truth = ((1 - ALPHA) * 255 + ALPHA * np.asarray(PALETTE[0], np.float32)).astype(int)
    assert any(np.abs(np.asarray(c) - blended_truth).max() <= 2 for c in colours), "truth drawn in label 1's colour"


def test_the_qa_page_follows_no_manifest_path_outside_its_output_folder(tmp_path, caplog):
    from medseg_monai.reporting import render_report

    image = np.zeros((12, 16), np.uint8)
    image[3:8, 4:12] = 200
    Image.fromarray(image).save(tmp_path / "secret.png")
    out = tmp_path / "masks"
    out.mkdir()
    Image.fromarray((image > 0).astype(np.uint8)).save(out / "inside.png")
    record = {
        "index": 0,
        "status": "written",
        "input": str(tmp_path / "secret.png"),
        "labels": {},
        "flags": [],
        "shape": [12, 16],
        "spacing": [1.0, 1.0],
        "seconds": 0.1,
    }
    manifest = {
        "output_dir": str(out),
        "model": {"label_values": [0, 1], "spatial_dims": 2},
        "cases": [{**record, "output": str(tmp_path / "secret.png")}, {**record, "output": str(out / "inside.png")}],
    }
    page = render_report(manifest)
    assert page.count("data:image/png;base64,") == 1
    assert "secret.png: no thumbnail (the mask is not inside the batch's output folder" in caplog.text
