"""Benchmark: the network alone, per precision and memory layout, against torch fp32 in the same process.

    python bench/network_speed.py                 # the benchmark model, 4 windows of 96^3, 5 repeats
    python bench/network_speed.py --quick         # 3 repeats
    python bench/network_speed.py --model RUN     # your own run folder

A last row times bf16 channels-last per window at window batches of 1, 2, 4 and 8
(``infer.sw_batch_size``). Each variant runs the same weights on the same batch of windows (a real CT
volume's windows, so the argmax agreement is measured on realistic input) and reports the best of the
repeats, its speed-up over fp32 and the share of voxels whose argmax equals fp32's. Results:
``summary.json`` section ``network``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

VARIANTS = ("fp32", "fp32_channels_last", "bf16", "bf16_channels_last")


def windows(predictor, image_file: Path, count: int):
    """``count`` preprocessed windows from the middle of a CT volume, ``(count, 1, *roi)``."""
    import torch

    from medseg_monai.keys import IMAGE

    image = predictor.preparation.lean_transforms({IMAGE: str(image_file)})[IMAGE].as_tensor()
    roi = predictor.config.roi_size
    centre = [s // 2 for s in image.shape[1:]]
    out = []
    for i in range(count):
        start = [
            max(0, min(c - r // 2 + (i - count // 2) * r // 2 * (d == 0), s - r))
            for d, (c, r, s) in enumerate(zip(centre, roi, image.shape[1:]))
        ]
        out.append(image[(slice(None), *(slice(a, a + r) for a, r in zip(start, roi)))])
    return torch.stack(out).contiguous()


def measure(model: Path, image_file: Path, batch: int, repeats: int) -> dict:
    import copy

    import torch

    from medseg_monai.inference import Predictor
    from medseg_monai.networks.precision import cpu_supports_bf16

    predictor = Predictor.from_run(model, runtime={"precision": "fp32", "memory_format": "contiguous"})
    x = windows(predictor, image_file, batch)
    network = predictor.network
    network_cl = copy.deepcopy(network).to(memory_format=torch.channels_last_3d)
    x_cl = x.to(memory_format=torch.channels_last_3d)
    rows, reference = {}, None
    for name in VARIANTS:
        net, inp = (network_cl, x_cl) if "channels_last" in name else (network, x)
        bf16 = name.startswith("bf16")

        def run(net=net, inp=inp, bf16=bf16):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return net(inp).float()

        run()  # warm-up: oneDNN picks its kernels on the first call
        seconds, out = common.best_of(run, repeats)
        labels = out.argmax(dim=1)
        reference = labels if reference is None else reference
        rows[name] = {
            "seconds": round(seconds, 4),
            "argmax_agreement": round(float((labels == reference).float().mean()), 5),
        }
    base = rows["fp32"]["seconds"]
    for row in rows.values():
        row["speedup"] = round(base / row["seconds"], 3)
    per_window = {}  # the window batch (infer.sw_batch_size): seconds per window, bf16 channels-last
    for size in (1, 2, 4, 8):
        inp = (
            x_cl[:size]
            if size <= batch
            else torch.cat([x_cl] * (size // batch + 1))[:size].contiguous(memory_format=torch.channels_last_3d)
        )

        def run_batch(inp=inp):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return network_cl(inp)

        run_batch()
        per_window[str(size)] = round(common.best_of(run_batch, repeats)[0] / size, 4)
    return {
        "batch": batch,
        "roi": list(predictor.config.roi_size),
        "threads": torch.get_num_threads(),
        "bf16_native": cpu_supports_bf16(),
        "variants": rows,
        "seconds_per_window_by_batch": per_window,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="run folder (default: the benchmark model)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or common.spleen_model(common.WORK)
    image = sorted(common.ct_cases(common.WORK, [150]).glob("*.nii.gz"))[0]
    result = measure(model, image, args.batch, 3 if args.quick else args.repeats)
    v = result["variants"]
    common.update_summary(
        "network",
        {
            "bf16_speedup": v["bf16"]["speedup"],
            "bf16_channels_last_speedup": v["bf16_channels_last"]["speedup"],
            "fp32_channels_last_speedup": v["fp32_channels_last"]["speedup"],
            "bf16_argmax_agreement": v["bf16"]["argmax_agreement"],
            "window_batch_1_vs_4": round(
                result["seconds_per_window_by_batch"]["1"] / result["seconds_per_window_by_batch"]["4"], 3
            ),
            "window_batch_8_vs_4": round(
                result["seconds_per_window_by_batch"]["8"] / result["seconds_per_window_by_batch"]["4"], 3
            ),
        },
        details=result,
    )
    for name, row in v.items():
        common.log(
            f"{name:20s} {row['seconds']:.3f} s  x{row['speedup']:.2f}  argmax agreement {row['argmax_agreement']:.4f}"
        )
    return result


if __name__ == "__main__":
    main()
