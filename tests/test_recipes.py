"""Real-data recipes: registry, splits, ROI wiring, results table, errors; `--smoke` of each recipe behind `slow`."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
from medseg_monai.evaluation import best_and_worst, pooled_by_group, pooled_metrics
from medseg_monai.io import mask_filename
from medseg_monai.models import load_checkpoint
from medseg_monai.recipes import (
    RECIPES,
    Recipe,
    SplitSpec,
    recipe_name,
    resolve_data_root,
    run_recipe,
    split_cases,
    write_results_table,
)
from medseg_monai.recipes.scoring import score_predictions
from medseg_monai.reporting import render_results
from tests.helpers import REPO, TINY_UNET

EXPECTED = {"isbi2012_em": 2, "drive_retina": 2, "chaos_mr_liver2d": 2, "msd_hippocampus": 3}


def _pairs(names):
    return [{"image": f"/x/images/{n}.png", "label": f"/x/masks/{n}.png", "name": n} for n in names]


# ----------------------------------------------------------------------------------------- registry
def test_registry_holds_the_four_datasets_with_their_networks():
    assert set(RECIPES) == set(EXPECTED)
    for name, recipe in RECIPES.items():
        assert recipe.dataset == name and recipe.spatial_dims == EXPECTED[name]
        assert (REPO / "pipelines" / f"{name}.py").read_text().count(f'recipe_main("{name}"') == 1
    for name in ("isbi2012_em", "drive_retina", "chaos_mr_liver2d"):
        assert RECIPES[name].networks == ("unet", "unetpp", "deeplabv3")
    assert RECIPES["msd_hippocampus"].networks == ("unet", "unet-2.5d", "deeplabv3-2.5d")
    assert RECIPES["msd_hippocampus"].config("unet-2.5d").data.image_dims == 3
    assert RECIPES["drive_retina"].roi_dir == "fov"
    assert RECIPES["msd_hippocampus"].config("unet").data.intensity == "percentile"
    assert {r.target for r in RECIPES.values()} == {None, 0.80, 0.92, 0.87}
    with pytest.raises(ValueError, match="runs networks unet"):
        RECIPES["msd_hippocampus"].config("deeplabv3")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_default_configs_are_consistent(name):
    from medseg_monai.networks import build_network

    recipe = RECIPES[name]
    for network, config in recipe.configs.items():
        data, train = config.data, config.train
        assert data.label_values is not None and data.label_names is not None
        assert train.epochs >= 500, "the wall-clock budget, not epochs, must end a full run"
        steps = 2 ** len(config.model.options.get("strides", (2, 2, 2, 2)))
        for size in tuple(data.patch_size) + tuple(config.roi_size):
            assert size % steps == 0, f"{name}/{network}: {size} not divisible by {steps}"
        if network == "unetpp":
            assert config.model.deep_supervision
        if network == "deeplabv3":
            assert train.batch_size * data.samples_per_image >= 2
        smoke = recipe.config(network, smoke=True)
        assert smoke.model == config.model and smoke.data == config.data and smoke.train.epochs <= 2
        net = build_network(
            dataclasses.replace(config, model=dataclasses.replace(config.model, deep_supervision=False))
        ).eval()
        shape = (2 * steps,) * data.spatial_dims
        with torch.no_grad():
            out = net(torch.zeros(1, data.network_in_channels, *shape))
        assert tuple(out.shape) == (1, len(data.label_values), *shape)


def test_chaos_keeps_the_anatomical_orientation_and_drops_specks():
    for network, config in RECIPES["chaos_mr_liver2d"].configs.items():
        assert config.data.mirror_axes == (1,) and not config.data.rotate90, network  # left-right flips only
        assert config.infer.tta_flips and config.infer.min_component_size == 32, network
    assert RECIPES["drive_retina"].config("unet").data.mirror_axes == (0, 1)


# ------------------------------------------------------------------------------------------- splits
def test_chaos_split_validates_on_val_and_full_only():
    names = (
        [f"aug_Aug_No_{i}" for i in range(20)]
        + ["val_P1_T1_00038", "val_P13_T1_00028"]
        + [f"full_P01_s{i:03d}" for i in range(5)]
    )
    train, val = split_cases(RECIPES["chaos_mr_liver2d"].split, _pairs(names), seed=3)
    assert {c["name"] for c in train} == {n for n in names if n.startswith("aug_")}
    assert all(c["name"].startswith(("val_", "full_")) for c in val) and len(val) == 7
    with pytest.raises(ValueError, match="start with none of"):
        split_cases(RECIPES["chaos_mr_liver2d"].split, _pairs(names + ["other_1"]))


def test_chaos_split_of_the_real_folder(shared_data_dir):
    from medseg_monai.data.datalist import discover_pairs

    folder = shared_data_dir / "chaos_mr_liver2d"
    if not folder.is_dir():
        pytest.skip("chaos_mr_liver2d not present")
    train, val = split_cases(RECIPES["chaos_mr_liver2d"].split, discover_pairs(folder))
    assert not [c for c in val if c["name"].startswith("aug_")]
    assert all(c["name"].startswith(("val_", "full_")) for c in val)
    assert all(c["name"].startswith("aug_") for c in train)


def test_isbi_split_holds_out_a_block_of_consecutive_sections():
    names = [f"isbi_{i:02d}" for i in range(30)]
    for seed in range(4):
        train, val = split_cases(RECIPES["isbi2012_em"].split, _pairs(names), seed=seed)
        indices = sorted(int(c["name"][-2:]) for c in val)
        assert len(val) == 6 and len(train) == 24
        assert indices == list(range(indices[0], indices[0] + 6))


def test_ratio_split_is_seeded_and_disjoint():
    names = [f"case_{i:03d}" for i in range(50)]
    a = split_cases(SplitSpec(val_fraction=0.2), _pairs(names), seed=1)
    b = split_cases(SplitSpec(val_fraction=0.2), _pairs(names), seed=1)
    assert a == b and len(a[1]) == 10
    assert not {c["name"] for c in a[0]} & {c["name"] for c in a[1]}


# ------------------------------------------------------------------------------------------- errors
def test_missing_data_root_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="MEDSEG_DATA_DIR"):
        run_recipe("drive_retina", "unet", out=tmp_path / "out", data_root=tmp_path / "nowhere", smoke=True)
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="drive_retina"):
        resolve_data_root(None, "drive_retina")
    with pytest.raises(ValueError, match="known: chaos_mr_liver2d"):
        run_recipe("nope", data_root=tmp_path)
    with pytest.raises(ValueError, match="runs networks"):
        run_recipe("msd_hippocampus", "deeplabv3", data_root=tmp_path)
    assert not (tmp_path / "out").exists()


def test_medseg_run_resolves_the_recipe_from_a_path(tmp_path, capsys):
    from medseg_monai.cli import main

    assert recipe_name("pipelines/drive_retina.py") == "drive_retina" == recipe_name("drive_retina")
    assert main(["run", "pipelines/nope.py", "--smoke"]) == 2
    assert "unknown recipe" in capsys.readouterr().err
    assert main(["run", "pipelines/isbi2012_em.py", "--smoke", "--data-root", str(tmp_path / "absent")]) == 2
    assert "real-data folder not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- ROI and metrics
def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_drive_metrics_are_restricted_to_the_fov(tmp_path):
    recipe = RECIPES["drive_retina"]
    dataset = tmp_path / "drive_retina"
    rng = np.random.default_rng(0)
    items = []
    for i in range(3):
        name = f"drive_{i}"
        truth = np.zeros((48, 40), np.uint8)
        truth[10:38, 5 + i : 9 + i] = 255
        fov = np.zeros_like(truth)
        fov[4:44, 2:38] = 255
        pred = truth.copy()
        pred[0:3, :] = 255  # wrong only outside the field of view
        _png(dataset / "images" / f"{name}.png", rng.integers(0, 255, (48, 40, 3)))
        _png(dataset / "masks" / f"{name}.png", truth)
        _png(dataset / "fov" / f"{name}.png", fov)
        _png(tmp_path / "run" / "predictions" / f"{name}.png", pred)
        items.append(
            {
                "image": str(dataset / "images" / f"{name}.png"),
                "label": str(dataset / "masks" / f"{name}.png"),
                "name": name,
            }
        )
    summary = score_predictions(recipe, "unet", tmp_path / "run", dataset, items, tmp_path / "run" / "predictions")
    assert summary["headline"]["value"] == pytest.approx(1.0)
    assert summary["metrics"]["vessel"]["accuracy"]["mean"] == pytest.approx(1.0)
    assert summary["pooled"]["vessel"]["dice"] == pytest.approx(1.0)
    assert summary["metrics"]["vessel"]["hd95"]["mean"] == pytest.approx(0.0)
    assert (tmp_path / "run" / "best_worst.png").is_file()
    plain = dataclasses.replace(recipe, roi_dir=None)
    unrestricted = score_predictions(plain, "unet", tmp_path / "run2", dataset, items, tmp_path / "run" / "predictions")
    assert unrestricted["headline"]["value"] < 0.9


def test_pooled_metrics_and_ranking():
    counts = {
        "val_P1_T1_1": (10, 0, 0, 90),
        "full_P01_s001": (0, 30, 0, 70),
        "full_P38_s001": (0, 0, 0, 100),
        "full_P38_s002": (10, 10, 10, 70),
    }
    rows = [
        {"case": case, "label": 255, "label_name": "liver", **dict(zip(("tp", "fp", "fn", "tn"), c))}
        for case, c in counts.items()
    ]
    pooled = pooled_metrics(rows)["liver"]  # tp 20, fp 40, fn 10, tn 330: sums, not per-case means
    assert pooled["dice"] == pytest.approx(2 * 20 / (30 + 60))
    assert pooled["precision"] == pytest.approx(20 / 60) and pooled["recall"] == pytest.approx(20 / 30)
    assert pooled["accuracy"] == pytest.approx(350 / 400)
    per_patient = pooled_by_group(rows, RECIPES["chaos_mr_liver2d"].patient_of)["liver"]
    assert per_patient["1"] == pytest.approx(20 / 50) and per_patient["38"] == pytest.approx(0.5)
    best, worst = best_and_worst({"a": 0.9, "b": 0.1, "c": math.nan, "d": 0.5}, count=2)
    assert [c for c, _ in best] == ["a", "d"] and [c for c, _ in worst] == ["b"]


# ------------------------------------------------------------------------------------ results table
def _fake_summary(recipe: str, network: str, kind: str, value: float) -> dict:
    return {
        "recipe": recipe,
        "dataset": recipe,
        "network": network,
        "kind": kind,
        "description": "d",
        "time_budget_min": 30 if kind == "full" else 2,
        "epochs_run": 7,
        "distance_unit": "pixel",
        "roi": None,
        "headline": {"name": "mean Dice", "value": value, "target": 0.87, "met": value >= 0.87},
        "metrics": {
            "anterior": {m: {"mean": value, "median": value, "std": 0.0, "n": 3} for m in ("dice", "iou", "hd95")}
        },
        "pooled": {"anterior": {"dice": value}},
        "command": f"medseg run pipelines/{recipe}.py --network {network}",
    }


def test_results_table_is_generated_from_summaries(tmp_path):
    runs = tmp_path / "runs"
    for i, (recipe, network, kind, value) in enumerate(
        [
            ("msd_hippocampus", "unet", "full", 0.88),
            ("drive_retina", "unet", "smoke", 0.12),
            ("drive_retina", "deeplabv3", "full", 0.7),
        ]
    ):
        folder = runs / f"r{i}" / network
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(_fake_summary(recipe, network, kind, value)))
    (runs / "r0" / "other.json").write_text("{}")
    (runs / "r9").mkdir()
    (runs / "r9" / "summary.json").write_text(json.dumps({"runs": {}}))  # not a recipe summary
    out = write_results_table([runs], tmp_path / "results.md")
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`medseg run" in line]
    assert len(rows) == 3
    assert rows[0].startswith("| drive_retina | deeplabv3 | full")  # recipe order, then full before smoke
    assert "smoke (wiring check, not a result)" in rows[1]
    assert "0.8800" in rows[2] and "0.87 (met)" in rows[2]
    assert "## msd_hippocampus" in text and "do not edit by hand" in text
    assert "No recipe runs found" in render_results([])


def test_results_archive_keeps_full_runs_and_later_runs_replace_them(tmp_path):
    archive, runs = tmp_path / "archive", tmp_path / "runs"
    archive.mkdir()
    old = dict(_fake_summary("msd_hippocampus", "unet", "full", 0.80), note="run folder not kept")
    (archive / "msd_hippocampus.unet.json").write_text(json.dumps(old))
    (archive / "drive_retina.unet.json").write_text(
        json.dumps(dict(_fake_summary("drive_retina", "unet", "full", 0.81), note="run folder not kept"))
    )
    for network, kind, value in [("unet", "full", 0.88), ("unetpp", "smoke", 0.1)]:
        folder = runs / network
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(_fake_summary("msd_hippocampus", network, kind, value)))

    text = write_results_table([runs], tmp_path / "results.md", archive=archive).read_text()
    assert sorted(path.name for path in archive.iterdir()) == [
        "drive_retina.unet.json",
        "msd_hippocampus.unet.json",
    ]  # smoke runs stay out
    assert json.loads((archive / "msd_hippocampus.unet.json").read_text())["headline"]["value"] == 0.88
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`medseg run" in line]
    assert len(rows) == 3 and "0.8000" not in text  # the new hippocampus run replaced the archived one
    assert rows[0].startswith("| drive_retina | unet | full [1] |") and "[1] run folder not kept" in text
    # the page regenerates from the archive alone once the run folders are gone
    shutil.rmtree(runs)
    again = write_results_table([], tmp_path / "again.md", archive=archive).read_text()
    assert len([line for line in again.splitlines() if "`medseg run" in line]) == 2


# ----------------------------------------------------------------------------- end to end, synthetic
def _tiny_recipe() -> Recipe:
    config = RunConfig(
        data=DataConfig(
            spatial_dims=2,
            in_channels=1,
            label_values=(0, 1, 2),
            label_names=("background", "organ", "lesion"),
            patch_size=(32, 32),
            samples_per_image=1,
        ),
        model=ModelConfig(name="unet", options=TINY_UNET),
        train=TrainConfig(epochs=50, batch_size=2, learning_rate=1e-2, val_interval=1),
        infer=InferConfig(sw_batch_size=2),
    )
    smoke = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2, iterations_per_epoch=2))
    return Recipe(
        name="synthetic",
        dataset="synthetic",
        description="synthetic organ + lesion",
        spatial_dims=2,
        split=SplitSpec(val_fraction=0.25),
        configs={"unet": config},
        smoke_configs={"unet": smoke},
        eval_labels={1: "organ", 2: "lesion"},
        primary_labels=(1, 2),
        target=0.5,
    )


def test_run_recipe_end_to_end_on_synthetic_data(tmp_path):
    from medseg_monai.data.synthetic_2d import make_synthetic_2d

    make_synthetic_2d(tmp_path / "data" / "synthetic", n_cases=8, shape=(48, 48), seed=1)
    recipe = _tiny_recipe()
    summary = run_recipe(
        recipe, "unet", out=tmp_path / "out", time_budget_min=0.25, data_root=tmp_path / "data", seed=2
    )
    run = tmp_path / "out" / "unet"
    for name in (
        "config.json",
        "metrics.csv",
        "curves.png",
        "best_worst.png",
        "datalist.json",
        "summary.json",
        "recipe.log",
        "checkpoints/last.pt",
        "evaluation/metrics_per_case.csv",
    ):
        assert (run / name).is_file(), name
    assert not (run / "schedule_probe").exists()
    assert summary["kind"] == "trial" and summary["cases"] == {"training": 6, "validation": 2}
    schedule = summary["schedule"]
    # the plan; by time, train.epochs stays the upper bound
    assert 2 <= schedule["epochs"] <= summary["epochs_planned"] <= 50
    # the budget re-fit may stretch or shorten the probe's plan once the run has timed its own epochs; never overrun
    fitted = load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train"]["epochs"]
    assert 2 <= summary["epochs_run"] <= fitted
    assert set(summary["metrics"]) == {"organ", "lesion"}
    assert {"dice", "iou", "precision", "recall", "hd95", "asd"} <= set(summary["metrics"]["organ"])
    assert summary["failed_predictions"] == [] and summary["missing_predictions"] == []
    assert summary["command"].startswith(
        "medseg run pipelines/synthetic.py --network unet --time-budget-min 0.25 --seed 2"
    )
    assert json.loads((run / "summary.json").read_text())["headline"]["name"] == "mean Dice"
    header = (run / "evaluation" / "metrics_per_case.csv").read_text().splitlines()[0]
    assert "hd95" in header and "asd" in header
    assert summary["infer"]["tta_flips"] is False

    # scoring again keeps the training and records the new inference settings
    rescored = run_recipe(
        recipe,
        "unet",
        out=tmp_path / "out",
        data_root=tmp_path / "data",
        seed=2,
        score_only=True,
        overrides={"infer.tta_flips": True},
    )
    assert rescored["infer"]["tta_flips"] is True
    assert rescored["epochs_run"] == summary["epochs_run"] and rescored["schedule"] == summary["schedule"]
    assert rescored["rescored"]["previous_headline"] == summary["headline"]
    assert rescored["versions"] == summary["versions"] and "torch_threads" in rescored["rescored"]["versions"]
    assert rescored["rescored"]["command"].endswith("--score-only --set infer.tta_flips=true")
    assert json.loads((run / "summary.json").read_text())["infer"]["tta_flips"] is True
    with pytest.raises(ValueError, match="infer"):
        run_recipe(
            recipe,
            "unet",
            out=tmp_path / "out",
            data_root=tmp_path / "data",
            score_only=True,
            overrides={"train.epochs": 3},
        )
    with pytest.raises(FileNotFoundError, match="train it first"):
        run_recipe(recipe, "unet", out=tmp_path / "elsewhere", data_root=tmp_path / "data", score_only=True)


def test_deeplab_with_local_weights_trains_in_two_stages(tmp_path):
    from medseg_monai.data.synthetic_2d import make_synthetic_2d
    from medseg_monai.networks import DeepLabV3Wrapper

    make_synthetic_2d(tmp_path / "data" / "synthetic", n_cases=6, shape=(64, 64), seed=1)
    weights = tmp_path / "backbone.pt"
    torch.save(DeepLabV3Wrapper(3, 5, backbone="mobilenet_v3_large").state_dict(), weights)
    base = _tiny_recipe()
    deeplab = RunConfig(
        data=dataclasses.replace(base.configs["unet"].data, patch_size=(64, 64), samples_per_image=2),
        model=ModelConfig(name="deeplabv3", options={"backbone": "mobilenet_v3_large"}),
        train=TrainConfig(epochs=2, iterations_per_epoch=2, batch_size=2, val_interval=1),
        infer=InferConfig(sw_batch_size=1),
    )
    recipe = dataclasses.replace(base, configs={"deeplabv3": deeplab}, smoke_configs={"deeplabv3": deeplab})
    with pytest.raises(ValueError, match="takes none"):
        run_recipe(base, "unet", out=tmp_path / "x", data_root=tmp_path / "data", smoke=True, pretrained=str(weights))
    summary = run_recipe(
        recipe, "deeplabv3", out=tmp_path / "out", data_root=tmp_path / "data", smoke=True, pretrained=str(weights)
    )
    assert summary["freeze_backbone_epochs"] == 1 and summary["pretrained"] == str(weights.resolve())
    assert "--pretrained" in summary["command"]
    log = (tmp_path / "out" / "deeplabv3" / "recipe.log").read_text()
    assert "loaded" in log and "backbone unfrozen" in log


# ------------------------------------------------------------------------------- real data, --smoke
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_smoke_on_real_data(name, shared_data_dir, tmp_path):
    if not (shared_data_dir / RECIPES[name].dataset).is_dir():
        pytest.skip(f"{RECIPES[name].dataset} not present under {shared_data_dir}")
    network = "all" if len(RECIPES[name].networks) > 1 else "unet"
    command = [
        sys.executable,
        str(REPO / "pipelines" / f"{name}.py"),
        "--smoke",
        "--network",
        network,
        "--out",
        str(tmp_path),
        "--data-root",
        str(shared_data_dir),
        "--time-budget-min",
        "3",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    for network in RECIPES[name].networks:
        run = tmp_path / network
        summary = json.loads((run / "summary.json").read_text())
        assert summary["kind"] == "smoke" and summary["failed_predictions"] == []
        assert set(summary["metrics"]) == set(RECIPES[name].eval_labels.values())
        for figure in ("curves.png", "best_worst.png"):
            with Image.open(run / figure) as png:
                assert png.format == "PNG"
        assert (run / "checkpoints" / "last.pt").is_file() and (run / "metrics.csv").is_file()
        validation = json.loads((run / "datalist.json").read_text())["validation"]
        assert len(validation) == summary["cases"]["validation"]
        assert all((run / "predictions" / mask_filename(case["image"])).is_file() for case in validation)
        assert f"{name} / {network}:" in done.stdout
