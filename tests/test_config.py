"""RunConfig: validation errors name the value, JSON round trip, overrides."""

import json
import logging

import pytest

from medseg_monai.config import (
    CONFIG_VERSION,
    BatchOptions,
    DataConfig,
    InferConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
)


def test_json_round_trip_restores_tuples_and_nested_sections(tmp_path):
    config = RunConfig(
        data=DataConfig(
            data_dir="d",
            spatial_dims=3,
            patch_size=(32, 32, 16),
            label_values=(0, 1, 2),
            target_spacing=(1.0, 1.0, 2.5),
        ),
        model=ModelConfig(name="unetpp", options={"features": [8, 8, 16, 32, 64, 8]}, deep_supervision=True),
        train=TrainConfig(epochs=3, learning_rate=1e-4),
        infer=InferConfig(roi_size=(32, 32, 16), overlap=0.5),
        runtime=RuntimeConfig(device="cpu", precision="fp32"),
    )
    path = config.save(tmp_path / "config.json")
    loaded = RunConfig.load(path)
    assert loaded == config
    assert isinstance(loaded.data.patch_size, tuple) and loaded.data.target_spacing == (1.0, 1.0, 2.5)
    saved = json.loads(path.read_text())
    assert saved["version"] == CONFIG_VERSION == 2
    assert saved["runtime"] == {"device": "cpu", "precision": "fp32", "memory_format": "auto"}
    assert not {"device", "precision", "memory_format"} & (set(saved["train"]) | set(saved["infer"]))


def _version_1(train: dict, infer: dict) -> dict:
    """A config as version 1 wrote it: the runtime fields declared in ``train`` and again in ``infer``."""
    raw = RunConfig().to_dict()
    raw.pop("runtime")
    raw["version"] = 1
    defaults = {"device": "auto", "precision": "auto", "memory_format": "auto"}
    raw["train"].update({**defaults, **train})
    raw["infer"].update({**defaults, **infer})
    return raw


def test_version_1_configs_load_with_one_runtime_section(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_version_1({"device": "cpu"}, {"memory_format": "contiguous"})))
    with caplog.at_level(logging.WARNING, logger="medseg_monai"):
        config = RunConfig.load(path)
    assert config.runtime == RuntimeConfig(device="cpu", precision="auto", memory_format="contiguous")
    assert not caplog.records  # a value set in one section only: nothing to choose between
    assert config.version == CONFIG_VERSION and config.save(path) and RunConfig.load(path) == config


def test_version_1_runtime_fields_that_differ_take_the_inference_value_with_a_warning(caplog):
    raw = _version_1({"precision": "bf16", "device": "cpu"}, {"precision": "fp32", "device": "auto"})
    with caplog.at_level(logging.WARNING, logger="medseg_monai"):
        config = RunConfig.from_dict(raw)
    assert config.runtime.precision == "fp32" and config.runtime.device == "cpu"  # auto gives way to a value
    assert [r.getMessage() for r in caplog.records] == [
        "config: train.precision='bf16' and infer.precision='fp32' are one runtime.precision now; using 'fp32'"
    ]


def test_runtime_fields_overridden_under_their_old_sections_are_refused_with_the_new_name():
    assert RunConfig().override({"runtime.precision": "bf16"}).runtime.precision == "bf16"
    with pytest.raises(ValueError, match=r"train.device is runtime.device now"):
        RunConfig().override({"train.device": "cpu"})
    # a hand-written train section (a bundle's, no version) keeps working: the field moves
    assert RunConfig.from_dict({"train": {"precision": "fp32"}}).runtime.precision == "fp32"
    with pytest.raises(ValueError, match="precision must be 'auto', 'fp32', 'bf16' or 'fp16', got 'fp64'"):
        RuntimeConfig(precision="fp64")


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: DataConfig(spatial_dims=4), "spatial_dims must be 2 or 3, got 4"),
        (lambda: DataConfig(spatial_dims=2, patch_size=(64,)), "patch_size must hold 2 positive sizes, got (64,)"),
        (lambda: DataConfig(patch_size=(64,)), "patch_size must hold 2 or 3 positive sizes, got (64,)"),
        (lambda: DataConfig(val_fraction=1.5), "val_fraction must be in [0, 1), got 1.5"),
        (
            lambda: DataConfig(intensity="hu"),
            "intensity must be 'auto', 'minmax', 'ct', 'zscore' or 'percentile', got 'hu'",
        ),
        (lambda: DataConfig(label_values=(0, 0)), "label_values must be distinct"),
        (lambda: TrainConfig(epochs=0), "epochs must be >= 1, got 0"),
        (lambda: TrainConfig(optimizer="lbfgs"), "optimizer must be 'adamw', 'adam' or 'sgd', got 'lbfgs'"),
        (lambda: InferConfig(overlap=1.0), "overlap must be in [0, 1), got 1.0"),
        (lambda: InferConfig(roi_size=(0, 8)), "roi_size must be positive, got (0, 8)"),
        (lambda: InferConfig(blend_mode="median"), "blend_mode must be 'gaussian' or 'constant', got 'median'"),
        (lambda: DataConfig(spatial_dims=4), "spatial_dims must be 2 or 3, got 4"),
        (lambda: BatchOptions(report=True), "report must be the path of the HTML page (or None), got True"),
        (
            lambda: RunConfig(data=DataConfig(spatial_dims=2), infer=InferConfig(roi_size=(8, 8, 8))),
            "infer.roi_size must hold 2 sizes",
        ),
    ],
)
def test_invalid_values_are_named(factory, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        factory()


def test_override_dotted_keys_and_unknown_keys():
    config = RunConfig().override({"train.epochs": 7, "data.patch_size": [64, 64], "model.name": "deeplabv3"})
    assert config.train.epochs == 7 and config.data.patch_size == (64, 64) and config.model.name == "deeplabv3"
    with pytest.raises(ValueError, match="unknown config field 'train.epoch'"):
        RunConfig().override({"train.epoch": 3})
    with pytest.raises(ValueError, match="section.field"):
        RunConfig().override({"epochs": 3})


def test_load_reports_file_and_problem(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad}: not valid JSON"):
        RunConfig.load(bad)
    bad.write_text(json.dumps({"train": {"epochs": 2, "bogus": 1}}))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['bogus'\] in config.train"):
        RunConfig.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        RunConfig.load(tmp_path / "missing.json")


def test_num_classes_requires_resolved_labels():
    with pytest.raises(ValueError, match="label_values is not resolved"):
        _ = DataConfig().num_classes
    assert DataConfig(label_values=(0, 255)).num_classes == 2
