"""Benchmark: the training step of the 2D recipes' UNet++ against their UNet, same patch and batch.

    python bench/unetpp_cost.py            # 8 patches of 256^2, 4 rounds
    python bench/unetpp_cost.py --quick    # 4 patches of 128^2, 2 rounds

A step is what the trainer runs: forward under the run's precision and memory format (``FastForward``),
DiceCE loss (``DeepSupervisionLoss`` over the four heads when deeply supervised), backward and AdamW.
The networks are the recipes' own presets (``medseg_monai.recipes.catalog``), plus two UNet++ variants:
without deep supervision, and with the full-resolution level at 8 channels. The variants run interleaved,
round after round, and each one's step time is the median over the rounds, so drift of a shared machine
reaches all alike. Forward FLOPs per patch (``torch.utils.flop_counter``) say how much of the ratio is
arithmetic. Results: ``docs/results/unetpp_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

RESULT = common.REPO / "docs" / "results" / "unetpp_cost.json"


def variants() -> dict[str, tuple[str, dict, bool]]:
    """name -> (network, options, deep supervision); the first two are the 2D recipes' networks."""
    from medseg_monai.recipes.catalog import UNET_2D, UNETPP_2D

    narrow = {**UNETPP_2D, "features": (8, *UNETPP_2D["features"][1:5], 8)}
    return {
        "unet": ("unet", UNET_2D, False),
        "unetpp": ("unetpp", UNETPP_2D, True),
        "unetpp_no_deep_supervision": ("unetpp", UNETPP_2D, False),
        "unetpp_level0_width8": ("unetpp", narrow, True),
    }


class Step:
    """One training step of a network: forward, loss, backward and optimiser, as the trainer runs them."""

    def __init__(self, name: str, options: dict, deep_supervision: bool, batch: tuple):
        import torch
        from monai.losses import DeepSupervisionLoss, DiceCELoss

        from medseg_monai.networks import create_network
        from medseg_monai.networks.precision import FastForward, resolve_memory_format, resolve_precision

        torch.manual_seed(0)
        self.network = create_network(name, 2, 1, 2, deep_supervision=deep_supervision, **options)
        memory_format = resolve_memory_format("auto", 2, name)
        self.network = self.network.to(memory_format=memory_format).train()
        dtype = resolve_precision("auto", torch.device("cpu"))
        self.forward = FastForward(self.network, torch.device("cpu"), dtype, memory_format)
        loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.loss = DeepSupervisionLoss(loss) if deep_supervision else loss
        self.optimizer = torch.optim.AdamW(self.network.parameters(), 1e-3)
        self.image, self.label = batch
        self.settings = {"precision": str(dtype).replace("torch.", "") if dtype else "float32"}
        self.settings["memory_format"] = str(memory_format).replace("torch.", "")

    def __call__(self) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.forward(self.image), self.label)
        loss.backward()
        self.optimizer.step()
        loss.item()
        return time.perf_counter() - start

    def forward_gflops(self) -> float:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.network(self.image[:1])
        return counter.get_total_flops() / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round (after one warm-up)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    patch, batch, rounds = (128, 4, args.rounds or 2) if args.quick else (256, 8, args.rounds or 4)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 1, patch, patch, generator=generator)
    label = (torch.rand(batch, 1, patch, patch, generator=generator) > 0.5).float()
    steps = {key: Step(*spec, batch=(image, label)) for key, spec in variants().items()}
    times: dict[str, list[float]] = {key: [] for key in steps}
    for step in steps.values():
        step()  # warm-up: kernels picked, buffers allocated
    for r in range(rounds):
        for key, step in steps.items() if r % 2 == 0 else reversed(steps.items()):
            times[key].extend(step() for _ in range(args.steps))
        common.log(
            f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in times.items())
        )
    base = statistics.median(times["unet"])
    rows = {}
    for key, step in steps.items():
        seconds = statistics.median(times[key])
        rows[key] = {
            "step_seconds": round(seconds, 4),
            "vs_unet": round(seconds / base, 2),
            "forward_gflops_per_patch": round(step.forward_gflops(), 3),
            "parameters": sum(p.numel() for p in step.network.parameters()),
            "memory_format": step.settings["memory_format"],
        }
    unet_flops = rows["unet"]["forward_gflops_per_patch"]
    for row in rows.values():
        row["flops_vs_unet"] = round(row["forward_gflops_per_patch"] / unet_flops, 2)
    result = {
        "patch": [patch, patch],
        "batch": batch,
        "threads": args.threads,
        "rounds": rounds,
        "steps_per_round": args.steps,
        "precision": steps["unet"].settings["precision"],
        "networks": rows,
        "machine": common.machine(),
    }
    if not args.quick:
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
