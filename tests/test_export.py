"""``medseg export``: one ONNX or TorchScript file that segments a file end to end as the run folder does.

Parity, measured on the tiny 2D (PNG) and 3D (NIfTI) runs: logits on fixed windows agree with the
checkpoint's within :data:`LOGIT_TOLERANCE` (measured: TorchScript at most 7e-7, the run's channels-last
layout against the export's contiguous one; ONNX Runtime at most 1e-6), and the masks written from the run
folder and from each artefact agree on at least 99.9 % of the pixels/voxels (measured: all of them).
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medseg_monai.cli import main
from medseg_monai.config import RunConfig
from medseg_monai.errors import EXIT_BAD_INPUT, EXIT_OK, CheckpointError, ConfigError
from medseg_monai.inference import Predictor
from medseg_monai.models.artefact import (
    ARTEFACT_FORMAT_VERSION,
    OnnxNetwork,
    example_windows,
    export_artefact,
    load_artefact,
)
from medseg_monai.networks import build_network

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

#: max abs logit difference from the checkpoint's network on the same windows, per format
LOGIT_TOLERANCE = {"torchscript": 1e-4, "onnx": 1e-3}
#: least fraction of voxels on which the artefact's mask equals the run folder's
MASK_AGREEMENT = 0.999
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}
FP32 = {"device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def runs(run_2d, run_3d) -> dict[int, Path]:
    return {2: Path(run_2d.run_dir), 3: Path(run_3d.run_dir)}


@pytest.fixture(scope="module")
def artefacts(runs, tmp_path_factory) -> dict[tuple[int, str], Path]:
    """Each tiny run exported to ONNX and TorchScript."""
    out = tmp_path_factory.mktemp("artefacts")
    found = {}
    for dims, run in runs.items():
        predictor = Predictor.from_run(run)  # the run's own inference settings go into the artefact
        for fmt, suffix in SUFFIX.items():
            found[dims, fmt] = export_artefact(predictor.network, predictor.config, out / f"model{dims}d{suffix}").path
    return found


def _source(dims: int, synth_2d: Path, synth_3d: Path) -> Path:
    return synth_2d / "case_000.png" if dims == 2 else synth_3d / "imagesTr" / "case_000.nii.gz"


CASES = [pytest.param(dims, fmt, id=f"{dims}d-{fmt}") for dims in (2, 3) for fmt in ("onnx", "torchscript")]


@pytest.mark.parametrize(("dims", "fmt"), CASES)
def test_artefact_masks_and_logits_match_the_run_folder(dims, fmt, runs, artefacts, synth_2d, synth_3d, tmp_path):
    run = Predictor.from_run(runs[dims], runtime=FP32)
    exported = Predictor.from_run(artefacts[dims, fmt], runtime=FP32)
    assert exported.config.runtime.precision == "fp32" and exported.source == artefacts[dims, fmt]

    windows = example_windows(run.config, batch=3, seed=7)  # a batch size other than the export's
    with torch.inference_mode():
        ours = run.network(windows.contiguous(memory_format=run.plan.memory_format))
        diff = float((exported.network(windows) - ours).abs().max())
    assert diff <= LOGIT_TOLERANCE[fmt], diff

    source = _source(dims, synth_2d, synth_3d)
    suffix = ".png" if dims == 2 else ".nii.gz"
    expected = run.predict_file(source, tmp_path / f"run{suffix}")
    written = exported.predict_file(source, tmp_path / f"artefact{suffix}")
    if dims == 2:
        a, b = np.asarray(Image.open(expected)), np.asarray(Image.open(written))
        assert b.shape == np.asarray(Image.open(source)).shape
    else:
        ref, out, src = nib.load(expected), nib.load(written), nib.load(source)
        a, b = np.asarray(ref.dataobj), np.asarray(out.dataobj)
        assert b.shape == src.shape and np.allclose(out.affine, src.affine, atol=1e-5)
    assert a.shape == b.shape
    assert (a == b).mean() >= MASK_AGREEMENT
    assert len(np.unique(a)) > 1  # the tiny model segments something: the comparison means something


def _mask(predictor: Predictor, source: Path, out: Path) -> np.ndarray:
    written = predictor.predict_file(source, out)
    return np.asarray(Image.open(written)) if out.suffix == ".png" else np.asarray(nib.load(written).dataobj)


@pytest.mark.parametrize("dims", [2, 3])
def test_artefacts_run_at_the_run_precision_or_say_their_own(
    dims, runs, artefacts, synth_2d, synth_3d, tmp_path, caplog
):
    """A TorchScript model runs under the same runtime.precision as its run folder (bf16 autocast where the CPU
    has it); an ONNX model in the float32 its metadata states, whatever was asked, and says so."""
    run = Predictor.from_run(runs[dims], runtime={"device": "cpu"})
    with caplog.at_level(logging.INFO, logger="medseg_monai"):
        scripted = Predictor.from_run(artefacts[dims, "torchscript"], runtime={"device": "cpu"})
        onnx = Predictor.from_run(artefacts[dims, "onnx"], runtime={"device": "cpu", "precision": "bf16"})
    assert scripted.plan.dtype == run.plan.dtype and scripted.plan.runtime.precision == "auto"
    assert onnx.plan.dtype is None and onnx.plan.runtime.precision == "fp32" and onnx.network.precision == "fp32"
    said = [r.getMessage() for r in caplog.records if "exported model, runs in" in r.getMessage()]
    assert said[-1].endswith("runs in float32 (runtime.precision=fp32)"), said
    source = _source(dims, synth_2d, synth_3d)
    suffix = ".png" if dims == 2 else ".nii.gz"
    ours = _mask(run, source, tmp_path / f"run{suffix}")
    theirs = _mask(scripted, source, tmp_path / f"scripted{suffix}")
    assert ours.shape == theirs.shape and (ours == theirs).mean() >= 0.999
    assert len(np.unique(ours)) > 1


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_artefact_carries_the_run_config_and_version(fmt, runs, artefacts):
    path = artefacts[3, fmt]
    network, config = load_artefact(path)
    assert config.to_dict() == RunConfig.load(runs[3] / "config.json").to_dict()
    if fmt == "onnx":
        assert isinstance(network, OnnxNetwork) and not list(network.parameters())
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["medseg.config"]) == config.to_dict()
        assert props["medseg.format_version"] == str(ARTEFACT_FORMAT_VERSION) and props["medseg.version"]
        assert json.loads(props["medseg.input_shape"]) == [-1, config.data.network_in_channels, *config.roi_size]
    else:
        names = zipfile.ZipFile(path).namelist()
        assert any(n.endswith("/extra/medseg/config.json") for n in names)
    description = Predictor.from_artefact(path, runtime={"device": "cpu"}).describe()["model"]
    assert description["checkpoint"] == str(path.resolve()) and len(description["weights_sha256"]) == 64


def test_only_the_first_output_of_a_deep_supervision_network_is_exported(run_2d, tmp_path):
    class Heads(torch.nn.Module):
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, x):
            logits = self.network(x)
            return [logits, logits * 0]

    run = Predictor.from_run(run_2d.run_dir, runtime=FP32)
    result = export_artefact(Heads(run.network), run.config, tmp_path / "heads.ts")
    network, _ = load_artefact(result.path)
    x = example_windows(run.config, batch=2)
    with torch.inference_mode():
        assert torch.allclose(network(x), run.network(x), atol=1e-5)


def test_onnx_export_falls_back_to_the_dynamo_exporter(run_2d, monkeypatch, tmp_path):
    legacy = torch.onnx.export

    def without_legacy(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("the TorchScript-based exporter is gone")
        return legacy(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", without_legacy)
    run = Predictor.from_run(run_2d.run_dir, runtime=FP32)
    result = export_artefact(run.network, run.config, tmp_path / "dynamo.onnx")
    network, _ = load_artefact(result.path)
    x = example_windows(run.config, batch=3)
    assert result.max_abs_diff <= LOGIT_TOLERANCE["onnx"]
    with torch.inference_mode():
        assert float((network(x) - run.network(x)).abs().max()) <= LOGIT_TOLERANCE["onnx"]


def test_cli_export_then_predict_with_the_file(run_2d, synth_2d, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["-q", "export", "--model", str(run_2d.run_dir), "--checkpoint", "last", "--out", str(out)]) == EXIT_OK
    assert "wrote" in capsys.readouterr().out and out.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    status = main(
        [
            "-q",
            "predict",
            "--model",
            str(out),
            "--input",
            str(synth_2d / "case_001.png"),
            "--output",
            str(tmp_path / "masks"),
        ]
    )
    assert status == EXIT_OK and (tmp_path / "masks" / "case_001.png").is_file()


def _newer(path: Path, out: Path) -> Path:
    """A copy of the artefact ``path`` claiming format version 2."""
    if path.suffix == ".onnx":
        model = onnx.load(str(path))
        for prop in model.metadata_props:
            if prop.key == "medseg.format_version":
                prop.value = "2"
        onnx.save(model, str(out))
    else:
        extra = {"medseg/config.json": "", "medseg/version": ""}
        network = torch.jit.load(str(path), _extra_files=extra)
        torch.jit.save(network, str(out), _extra_files={**extra, "medseg/format_version": "2"})
    return out


BAD = {
    "truncated": r"not a readable (ONNX model|TorchScript archive) \(truncated, or another kind of file",
    "foreign": r"(not a readable (ONNX model|TorchScript archive)|without medseg metadata)",
    "newer": r"written by a newer medseg-monai( \S+)? \(format version 2; this one reads 1\)",
}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_artefacts_are_one_line_checkpoint_errors(kind, fmt, artefacts, synth_2d, tmp_path, capsys):
    source = artefacts[2, fmt]
    bad = tmp_path / f"bad{SUFFIX[fmt]}"
    if kind == "truncated":
        bad.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    elif kind == "foreign":
        bad.write_bytes((synth_2d / "case_000.png").read_bytes())
    else:
        _newer(source, bad)
    with pytest.raises(CheckpointError, match=BAD[kind]) as err:
        load_artefact(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    capsys.readouterr()
    status = main(
        [
            "-q",
            "predict",
            "--model",
            str(bad),
            "--input",
            str(synth_2d / "case_000.png"),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == EXIT_BAD_INPUT and len(lines) == 1 and lines[0].startswith("medseg predict: error: "), lines


def test_a_checkpoint_renamed_ts_and_an_unknown_suffix_are_refused(runs, tmp_path):
    renamed = tmp_path / "best.ts"
    renamed.write_bytes((runs[2] / "checkpoints" / "best.pt").read_bytes())  # a zip archive, not TorchScript
    with pytest.raises(CheckpointError, match=r"best\.ts: a zip archive without medseg metadata"):
        load_artefact(renamed)
    with pytest.raises(CheckpointError, match=r"model\.bin: not an exported model"):
        load_artefact(tmp_path / "model.bin")
    with pytest.raises(CheckpointError, match=r"gone\.onnx: exported model not found"):
        Predictor.from_run(tmp_path / "gone.onnx")


def test_export_refuses_a_format_its_suffix_contradicts(run_2d, tmp_path, capsys):
    status = main(["-q", "export", "--model", str(run_2d.run_dir), "--format", "onnx", "--out", str(tmp_path / "m.ts")])
    err = capsys.readouterr().err.strip()
    assert status == EXIT_BAD_INPUT and "m.ts: onnx models are named *.onnx" in err
    status = main(["-q", "export", "--model", str(run_2d.run_dir), "--out", str(tmp_path / "m.bin")])
    assert status == EXIT_BAD_INPUT and "named *.onnx (ONNX) or *.ts (TorchScript)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_missing_onnx_runtime_names_the_extra(artefacts, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(ConfigError, match=r'onnxruntime missing\): pip install "medseg-monai\[export\]"'):
        load_artefact(artefacts[2, "onnx"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_2_5d_artefact_segments_a_volume_like_its_network(fmt, synth_3d, tmp_path):
    torch.manual_seed(0)
    config = RunConfig.from_dict(
        {
            "data": {
                "spatial_dims": 2,
                "slice_axis": 2,
                "context_slices": 1,
                "patch_size": [32, 32],
                "in_channels": 1,
                "label_values": [0, 1, 2],
                "intensity": "minmax",
                "target_spacing": [],
            },
            "model": {"name": "unet", "options": {"channels": [8, 16], "strides": [2], "num_res_units": 1}},
            "infer": {"overlap": 0.25, "foreground_crop": "none"},
            "runtime": FP32,
        }
    )
    network = build_network(config).eval()
    direct = Predictor(network, config)
    artefact = export_artefact(network, config, tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'ts'}").path
    exported = Predictor.from_artefact(artefact, runtime={"device": "cpu"})
    assert exported.config.data.context_slices == 1 and exported.config.data.network_in_channels == 3
    source = synth_3d / "imagesTr" / "case_001.nii.gz"
    expected = np.asarray(nib.load(direct.predict_file(source, tmp_path / "direct.nii.gz")).dataobj)
    written = exported.predict_file(source, tmp_path / "artefact.nii.gz")
    assert nib.load(written).shape == nib.load(source).shape
    assert (np.asarray(nib.load(written).dataobj) == expected).mean() >= MASK_AGREEMENT
    assert (
        len(np.unique(expected)) > 1
    )  # random weights still label more than one class: the comparison means something


def test_an_onnx_model_refuses_windows_of_another_size(artefacts):
    path = artefacts[2, "onnx"]
    exported = Predictor.from_artefact(path)
    with pytest.raises(ConfigError, match=r"ONNX model takes its export's windows \[32, 32\] only, not \[48, 48\]"):
        Predictor.from_artefact(path, infer={"roi_size": [48, 48]})
    assert tuple(exported.config.roi_size) == (32, 32)
    assert tuple(
        Predictor.from_artefact(artefacts[2, "torchscript"], infer={"roi_size": [48, 48]}).config.roi_size
    ) == (48, 48)
