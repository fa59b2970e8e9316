"""Benchmark: windows per second of a run folder's network (torch fp32) against its ONNX and TorchScript exports.

    python bench/export_speed.py                  # the spleen bundle's 3D UNet (untrained), 4 windows of 96^3
    python bench/export_speed.py --quick          # 2 windows of 64^3, 2 repeats
    python bench/export_speed.py --model RUN      # your own run folder (its roi size)

The same weights run on the same batch of windows in one process: the run folder's network as
``Predictor.from_run`` loads it in float32 (contiguous and channels-last), the artefact of
``medseg export --format onnx`` under ONNX Runtime (CPU, ``torch.get_num_threads()`` threads) and the one of
``--format torchscript``. Each reports the best of the repeats after a warm-up, windows/s, its ratio to
torch fp32 (contiguous) and the largest logit difference. Speed does not depend on training, so without
``--model`` an untrained run folder of the benchmark network is written to ``runs/bench/export_model``.
Nothing else heavy should run meanwhile.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def untrained_run(folder: Path, roi: int, batch: int) -> Path:
    """A run folder (config.json + checkpoints/best.pt) of the spleen bundle's UNet with random weights."""
    import torch

    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig
    from medseg_monai.models.checkpoint import save_checkpoint
    from medseg_monai.networks import build_network

    config = RunConfig(
        data=DataConfig(
            spatial_dims=3,
            in_channels=1,
            patch_size=(64, 64, 64),
            intensity="ct",
            ct_window=common.RECIPE_HU,
            target_spacing=common.RECIPE_SPACING,
            label_values=(0, 1, 2),
            label_names=("background", "organ", "lesion"),
        ),
        model=ModelConfig(name="unet"),
        infer=InferConfig(roi_size=(roi,) * 3, sw_batch_size=batch, overlap=0.25),
    )
    torch.manual_seed(0)
    network = build_network(config, load_pretrained=False)
    config.save(folder / "config.json")
    save_checkpoint(folder / "checkpoints" / "best.pt", {"network": network.state_dict(), "config": config.to_dict()})
    return folder


def measure(model: Path, batch: int, repeats: int) -> dict:
    import torch

    from medseg_monai.inference import Predictor
    from medseg_monai.models.artefact import example_windows, export_artefact, load_artefact

    predictor = Predictor.from_run(model, runtime={"device": "cpu", "precision": "fp32", "memory_format": "contiguous"})
    x = example_windows(predictor.config, batch=batch, seed=3)
    network = predictor.network
    variants = {"torch_fp32": (network, x)}
    channels_last = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".ts")):
            export_artefact(network, predictor.config, Path(tmp) / f"model{suffix}", fmt)
            variants[fmt] = (load_artefact(Path(tmp) / f"model{suffix}")[0], x)
        variants["torch_fp32_channels_last"] = (
            copy.deepcopy(network).to(memory_format=channels_last),
            x.contiguous(memory_format=channels_last),
        )
        rows, reference = {}, None
        for name, (net, inp) in variants.items():

            def run(net=net, inp=inp):
                with torch.inference_mode():
                    return net(inp).float()

            run()  # warm-up: oneDNN and ONNX Runtime pick their kernels on the first call
            seconds, out = common.best_of(run, repeats)
            reference = out if reference is None else reference
            rows[name] = {
                "seconds": round(seconds, 4),
                "windows_per_s": round(batch / seconds, 3),
                "max_abs_logit_diff": float((out - reference).abs().max()),
            }
    base = rows["torch_fp32"]["seconds"]
    for row in rows.values():
        row["ratio_to_torch_fp32"] = round(base / row["seconds"], 3)
    return {
        "model": str(model),
        "roi_size": list(predictor.config.roi_size),
        "windows": batch,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "machine": common.machine(),
        "variants": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder (default: an untrained benchmark UNet)")
    parser.add_argument("--windows", type=int, help="windows per batch (default 4; --quick 2)")
    parser.add_argument("--roi", type=int, help="window edge of the default model (default 96; --quick 64)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3; --quick 2)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    batch = args.windows or (2 if args.quick else 4)
    repeats = args.repeats or (2 if args.quick else 3)
    roi = args.roi or (64 if args.quick else 96)
    model = args.model or untrained_run(common.WORK / f"export_model_{roi}", roi, batch)
    result = measure(model, batch, repeats)
    print(f"{result['windows']} windows of {result['roi_size']}, {result['threads']} threads, best of {repeats}")
    print(f"{'variant':26s} {'s/batch':>8s} {'windows/s':>10s} {'x torch fp32':>13s} {'max |dlogit|':>13s}")
    for name, row in result["variants"].items():
        print(
            f"{name:26s} {row['seconds']:8.3f} {row['windows_per_s']:10.2f} {row['ratio_to_torch_fp32']:13.2f} "
            f"{row['max_abs_logit_diff']:13.2e}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
