"""The standard MONAI inference config generated from a run (medseg_monai.inference.standard_config): it runs through
``python -m monai.bundle run`` with MONAI components only, and writes the fast path's masks at float32."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from medseg_monai.api import STANDARD_IDS, Predictor, load_checkpoint, standard_inference_config, write_standard_config
from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.io import load_image
from medseg_monai.transforms import RemoveSmallComponents

#: the fast path with what the standard components do not have turned off: every window, float32, no flips
FAST_AS_STANDARD = {"tta_flips": False, "windows_only": False, "foreground_crop": "none", "inversion": "linear"}


def _targets(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["_target_"]] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def _bundle_from_run(checkpoint: Path, dest: Path) -> tuple[Path, RunConfig]:
    payload = load_checkpoint(checkpoint)
    (dest / "models").mkdir(parents=True)
    torch.save(payload["network"], dest / "models" / "model.pt")
    config = RunConfig.from_dict(payload["config"])
    write_standard_config(config, dest / "configs" / "inference.json")
    return dest, config


@pytest.mark.parametrize("dims", [2, 3])
def test_standard_config_runs_with_monai_and_matches_the_fast_path(dims, run_2d, run_3d, synth_2d, synth_3d, tmp_path):
    run, data = (run_2d, synth_2d) if dims == 2 else (run_3d, synth_3d)
    bundle, config = _bundle_from_run(Path(run.best_checkpoint), tmp_path / "bundle")
    written = json.loads((bundle / "configs" / "inference.json").read_text())
    assert set(STANDARD_IDS) <= set(written)
    assert all(t.startswith("monai.") or "." not in t for t in _targets(written)), _targets(written)

    suffix = ".png" if dims == 2 else ".nii.gz"
    images = sorted(p for p in data.rglob(f"*{suffix}") if "label" not in p.name and "mask" not in str(p.parent))[:2]
    sources = tmp_path / "sources"
    sources.mkdir()
    for image in images:
        shutil.copy(image, sources / image.name)
    out = tmp_path / "masks"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json")]
    command += [
        "--bundle_root",
        str(bundle),
        "--dataset_dir",
        str(sources),
        "--output_dir",
        str(out),
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    fast = Predictor.from_checkpoint(run.best_checkpoint, infer=FAST_AS_STANDARD, runtime={"precision": "fp32"})
    for image in images:
        mask_path = out / image.name
        standard = load_image(mask_path, dtype=None)
        assert standard.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64), standard.dtype
        expected = fast.predict_image(sources / image.name)
        assert np.array_equal(np.asarray(standard), expected), f"{image.name}: standard and fast masks differ"
        if dims == 3:  # the source's exact geometry
            np.testing.assert_allclose(nib.load(mask_path).affine, nib.load(image).affine, atol=1e-5)
            assert nib.load(mask_path).get_data_dtype() == np.uint8


def test_component_removal_of_one_class_is_monai_remove_small_objects(run_2d):
    """One foreground class: the generated ``RemoveSmallObjectsd`` removes what ``RemoveSmallComponents`` does."""
    config = RunConfig.from_dict(load_checkpoint(run_2d.best_checkpoint)["config"])
    data = dataclasses.replace(config.data, label_values=(0, 255), label_names=("background", "vessel"))
    binary = dataclasses.replace(config, data=data, infer=dataclasses.replace(config.infer, min_component_size=5))
    steps = standard_inference_config(binary)["postprocessing"]["transforms"]
    names = [s["_target_"] for s in steps]
    assert names[names.index("AsDiscreted") + 1] == "RemoveSmallObjectsd"
    assert names[-2:] == ["MapLabelValued", "SaveImaged"]
    parser = ConfigParser({"step": steps[names.index("RemoveSmallObjectsd")]})
    step = parser.get_parsed_content("step")
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.random((1, 40, 40)) > 0.8, dtype=torch.float32)  # many specks and a few blobs
    labels[0, 5:12, 5:12] = 1
    ours = RemoveSmallComponents([1], 5)(labels.to(torch.int64))
    theirs = step({"pred": labels})["pred"]
    assert int(labels.sum()) > int(ours.sum()) > 0
    assert torch.equal(torch.as_tensor(theirs).to(torch.int64), ours)


def test_what_the_standard_components_cannot_express_is_refused(run_2d):
    config = RunConfig.from_dict(load_checkpoint(run_2d.best_checkpoint)["config"])
    multi = dataclasses.replace(config, infer=dataclasses.replace(config.infer, min_component_size=10))
    with pytest.raises(ConfigError, match=r"min_component_size 10 with 3 classes: MONAI has no per-class"):
        standard_inference_config(multi)
    deeplab = dataclasses.replace(config, model=dataclasses.replace(config.model, name="deeplabv3", options={}))
    with pytest.raises(ConfigError, match=r"model.name 'deeplabv3': no MONAI class builds this network"):
        standard_inference_config(deeplab)
