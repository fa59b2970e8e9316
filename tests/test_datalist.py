"""Pair discovery in every layout, splits, and prediction inputs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medseg_monai.data.datalist import discover_pairs, load_datalist
from medseg_monai.data.inputs import collect_inputs
from medseg_monai.data.splits import split_by_group, split_pairs

REPO = Path(__file__).resolve().parents[1]


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 5), value, dtype=np.uint8)).save(path)
    return path


def _nii(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 2), dtype=np.uint8), np.eye(4)), path)
    return path


def _names(items: list[dict]) -> list[str]:
    return [item["name"] for item in items]


def _rel(items: list[dict], root: Path, key: str) -> list[str]:
    return [Path(item[key]).relative_to(root).as_posix() for item in items]


# ----------------------------------------------------------------------------------------- layouts


def test_flat_folder_with_mask_and_segmentation_suffixes(tmp_path: Path) -> None:
    for name in ("b", "a"):
        _png(tmp_path / f"{name}.png")
        _png(tmp_path / f"{name}_mask.png")
    _png(tmp_path / "c.jpg")
    _png(tmp_path / "c_segmentation.png")
    (tmp_path / "PROVENANCE.txt").write_text("source")
    _png(tmp_path / ".hidden.png")
    _png(tmp_path / "fov" / "a.png")
    items = discover_pairs(tmp_path)
    assert _names(items) == ["a", "b", "c"]
    assert _rel(items, tmp_path, "image") == ["a.png", "b.png", "c.jpg"]
    assert _rel(items, tmp_path, "label") == ["a_mask.png", "b_mask.png", "c_segmentation.png"]
    assert all(isinstance(v, str) and os.path.isabs(item["image"]) for item in items for v in item.values())


@pytest.mark.parametrize("mask_dir", ["masks", "labels"])
def test_images_and_masks_folders(tmp_path: Path, mask_dir: str) -> None:
    _png(tmp_path / "images" / "x1.jpg")
    _png(tmp_path / mask_dir / "x1.png")  # different extension
    _png(tmp_path / "images" / "x2.png")
    _png(tmp_path / mask_dir / "x2_mask.png")
    _png(tmp_path / "images" / "x3.tif")
    _png(tmp_path / mask_dir / "x3_segmentation.png")
    _png(tmp_path / "fov" / "x1.png")
    _png(tmp_path / "masks_multiclass" / "x1.png")
    (tmp_path / "PROVENANCE.txt").write_text("source")
    items = discover_pairs(tmp_path)
    assert _names(items) == ["x1", "x2", "x3"]
    assert _rel(items, tmp_path, "label") == [
        f"{mask_dir}/x1.png",
        f"{mask_dir}/x2_mask.png",
        f"{mask_dir}/x3_segmentation.png",
    ]


def test_msd_layout_strips_channel_suffix(tmp_path: Path) -> None:
    _nii(tmp_path / "imagesTr" / "case_a_0000.nii.gz")
    _nii(tmp_path / "imagesTr" / "case_b.nii.gz")
    (tmp_path / "imagesTr" / "case_c.mha").write_bytes(b"ObjectType = Image\n")  # discovery reads names only
    _nii(tmp_path / "labelsTr" / "case_a.nii.gz")
    _nii(tmp_path / "labelsTr" / "case_b.nii.gz")
    _nii(tmp_path / "labelsTr" / "case_c.nii")
    _png(tmp_path / "imagesTs" / "case_z.png")
    items = discover_pairs(tmp_path)
    assert _names(items) == ["case_a", "case_b", "case_c"]
    assert _rel(items, tmp_path, "image")[0] == "imagesTr/case_a_0000.nii.gz"


def test_msd_name_ending_in_four_digits_kept_when_label_has_it(tmp_path: Path) -> None:
    _nii(tmp_path / "imagesTr" / "patient_0001.nii.gz")
    _nii(tmp_path / "labelsTr" / "patient_0001.nii.gz")
    assert _names(discover_pairs(tmp_path)) == ["patient_0001"]


def test_msd_multichannel_case_lists_its_channels(tmp_path: Path) -> None:
    for channel in ("0000", "0001"):
        _nii(tmp_path / "imagesTr" / f"brats_7_{channel}.nii.gz")
    _nii(tmp_path / "labelsTr" / "brats_7.nii.gz")
    (item,) = discover_pairs(tmp_path)  # more in tests/test_multichannel.py
    assert item["name"] == "brats_7"
    assert [Path(p).name for p in item["image"]] == ["brats_7_0000.nii.gz", "brats_7_0001.nii.gz"]


def test_msd_dataset_json_training_list(tmp_path: Path) -> None:
    for name in ("h1", "h2"):
        _nii(tmp_path / "imagesTr" / f"{name}.nii.gz")
        _nii(tmp_path / "labelsTr" / f"{name}.nii.gz")
    _nii(tmp_path / "imagesTr" / "unlisted.nii.gz")  # only the listed cases count
    training = [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in ("h2", "h1")]
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "Hippo", "training": training, "test": []}))
    items = discover_pairs(tmp_path)
    assert _names(items) == ["h1", "h2"]
    assert Path(items[0]["image"]) == (tmp_path / "imagesTr" / "h1.nii.gz").absolute()


def test_nnunet_v2_dataset_json_file_ending(tmp_path: Path) -> None:
    _nii(tmp_path / "imagesTr" / "k_0000.nii.gz")
    _nii(tmp_path / "labelsTr" / "k.nii.gz")
    _png(tmp_path / "imagesTr" / "preview.png")  # other ending: ignored
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1}, "file_ending": ".nii.gz"}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    assert _names(discover_pairs(tmp_path)) == ["k"]


def test_datalist_json(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "p.png")
    _png(tmp_path / "seg" / "p.png")
    _png(tmp_path / "img" / "q.png")
    _png(tmp_path / "seg" / "q.png")
    datalist = {
        "training": [{"image": "img/q.png", "label": "seg/q.png"}],
        "validation": [{"image": "img/p.png", "label": "seg/p.png", "name": "pat_p"}],
    }
    path = tmp_path / "list.json"
    path.write_text(json.dumps(datalist))
    assert _names(discover_pairs(path)) == ["q"]
    val = load_datalist(path, key="validation")
    assert _names(val) == ["pat_p"] and Path(val[0]["label"]) == tmp_path / "seg" / "p.png"
    with pytest.raises(ValueError, match="test"):
        load_datalist(path, key="test")
    path.write_text(json.dumps({"training": [{"image": "img/q.png"}]}))
    with pytest.raises(ValueError, match="label"):
        discover_pairs(path)
    path.write_text(json.dumps({"training": [{"image": "img/gone.png", "label": "seg/q.png"}]}))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        discover_pairs(path)


# ------------------------------------------------------------------------------------------ errors


def test_unmatched_image_names_the_case(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "ok.png")
    _png(tmp_path / "masks" / "ok.png")
    _png(tmp_path / "images" / "lonely.png")
    with pytest.raises(ValueError, match="without a mask: lonely") as err:
        discover_pairs(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_orphan_mask(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "a_mask.png")
    _png(tmp_path / "ghost_mask.png")
    with pytest.raises(ValueError, match="without an image: ghost_mask.png"):
        discover_pairs(tmp_path)


def test_many_unmatched_are_abbreviated(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "ok.png")
    _png(tmp_path / "masks" / "ok.png")
    for i in range(14):
        _png(tmp_path / "images" / f"n{i:02d}.png")
    with pytest.raises(ValueError, match="n09 and 4 more"):
        discover_pairs(tmp_path)


def test_duplicate_image_stems(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "images" / "a.tif")
    _png(tmp_path / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"a\.png, a\.tif"):
        discover_pairs(tmp_path, allow_unmatched=True)


def test_two_masks_for_one_image(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "a_mask.png")
    _png(tmp_path / "a_segmentation.png")
    with pytest.raises(ValueError, match="a has several masks"):
        discover_pairs(tmp_path)


def test_allow_unmatched_drops_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _png(tmp_path / "images" / "ok.png")
    _png(tmp_path / "masks" / "ok.png")
    _png(tmp_path / "images" / "lonely.png")
    _png(tmp_path / "masks" / "stray.png")
    with caplog.at_level(logging.WARNING, logger="medseg_monai.data.datalist"):
        items = discover_pairs(tmp_path, allow_unmatched=True)
    assert _names(items) == ["ok"]
    assert "lonely" in caplog.text and "stray.png" in caplog.text


def test_missing_and_empty_roots(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        discover_pairs(tmp_path / "does_not_exist")
    with pytest.raises(ValueError, match="supported"):
        discover_pairs(tmp_path)
    _png(tmp_path / "only_image.png")
    with pytest.raises(ValueError, match="supported"):
        discover_pairs(tmp_path)
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(ValueError, match="labelsTr"):
        discover_pairs(tmp_path)


# ------------------------------------------------------------------------------------------ splits


def _items(n: int) -> list[dict]:
    return [{"image": f"/d/c{i:02d}.png", "label": f"/m/c{i:02d}.png", "name": f"c{i:02d}"} for i in range(n)]


def test_split_is_deterministic_complete_and_order_independent() -> None:
    items = _items(23)
    train, val = split_pairs(items, 0.2, seed=7)
    assert len(val) == 5 and len(train) == 18
    assert not {i["name"] for i in train} & {i["name"] for i in val}
    assert sorted(_names(train + val)) == _names(items)
    assert split_pairs(list(reversed(items)), 0.2, seed=7) == (train, val)
    assert split_pairs(items, 0.2, seed=8) != (train, val)


def test_split_edge_cases() -> None:
    assert len(split_pairs(_items(3), 0.01)[1]) == 1  # at least one validation case
    assert len(split_pairs(_items(2), 0.9)[0]) == 1  # at least one training case
    assert split_pairs(_items(1), 0.5) == (_items(1), [])
    assert split_pairs(_items(4), 0.0) == (_items(4), [])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            split_pairs(_items(4), bad)
    with pytest.raises(ValueError, match="empty"):
        split_pairs([], 0.2)


def test_split_by_group_keeps_groups_together() -> None:
    items = _items(20)
    patient = lambda name: f"p{int(name[1:]) // 4}"  # noqa: E731 -- 5 patients x 4 cases
    train, val = split_by_group(items, patient, 0.2, seed=1)
    assert len(val) == 4 and len(train) == 16
    assert not {patient(n) for n in _names(train)} & {patient(n) for n in _names(val)}
    assert split_by_group(list(reversed(items)), patient, 0.2, seed=1) == (train, val)
    assert split_by_group(items, lambda n: "one", 0.3) == (items, [])


# ---------------------------------------------------------------------------------- collect_inputs


def _dicom_series(folder: Path) -> Path:
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(2):  # one series: both slices share a SeriesInstanceUID
        image = sitk.GetImageFromArray(np.full((4, 4), z, dtype=np.int16))
        image.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.5")
        image.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.5.{z + 1}")
        writer.SetFileName(str(folder / f"s{z}.dcm"))
        writer.Execute(image)
    return folder


def test_collect_inputs_file_folder_and_glob(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    b = _png(scans / "b.png")
    a = _nii(scans / "a.nii.gz")
    _png(scans / "a_mask.png")
    _png(scans / "b_segmentation.png")
    _png(scans / ".hidden.png")
    (scans / "notes.txt").write_text("not an input")
    _png(scans / "nested" / "deep.png")
    series = _dicom_series(scans / "series1")
    assert collect_inputs(b) == [b]
    assert collect_inputs(str(scans)) == [a, b, series]
    assert collect_inputs(series) == [series]
    assert collect_inputs(str(scans / "*.png")) == [b]
    assert collect_inputs([b, scans, str(scans / "*.nii.gz")]) == [b, a, series]


def test_collect_inputs_list_files(tmp_path: Path) -> None:
    x = _png(tmp_path / "data" / "x.png")
    y = _nii(tmp_path / "data" / "y.nii.gz")
    txt = tmp_path / "data" / "list.txt"
    txt.write_text("# cases\nx.png\n\ny.nii.gz\nx.png\n")
    assert collect_inputs(txt) == [x, y]
    csv_file = tmp_path / "cases.csv"
    csv_file.write_text("patient,image\n1,data/y.nii.gz\n2,data/x.png\n")
    assert collect_inputs(str(csv_file)) == [y, x]
    csv_file.write_text(f"path\n{x}\n")
    assert collect_inputs(csv_file) == [x]
    csv_file.write_text("patient,scan\n1,data/y.nii.gz\n")
    with pytest.raises(ValueError, match="'image' or 'path'"):
        collect_inputs(csv_file)


def test_collect_inputs_errors(tmp_path: Path) -> None:
    ok = _png(tmp_path / "ok.png")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        collect_inputs([ok, tmp_path / "gone.png"])
    (tmp_path / "list.txt").write_text("ok.png\nmissing.nii.gz\n")
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        collect_inputs(tmp_path / "list.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        collect_inputs(tmp_path / "empty")
    with pytest.raises(ValueError, match="nothing"):
        collect_inputs(str(tmp_path / "nothing*.png"))
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ValueError, match="notes.md"):
        collect_inputs(tmp_path / "notes.md")


# ------------------------------------------------------------------------------------- shared data


@pytest.mark.parametrize("folder, count", [("isbi2012_em", 30), ("drive_retina", 20), ("msd_hippocampus", 208)])
def test_shared_datasets(folder: str, count: int) -> None:
    root = Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")) / folder
    if not root.is_dir():
        pytest.skip(f"shared dataset {root} not available")
    items = discover_pairs(root)
    assert len(items) == count
    assert all(Path(item["image"]).is_file() and Path(item["label"]).is_file() for item in items)
    assert all("/fov/" not in item["label"] for item in items)
