"""Where a training step's time goes: the training benchmark's network and batch, phase by phase.

    python bench/train_profile.py            # 96^3 patches, batch 4 (2 images x 2 patches), 4 timed steps
    python bench/train_profile.py --quick    # 64^3 patches

The network, loss and batch of ``bench/train_vs_monai.py`` (the spleen bundle's residual UNet, DiceCE, AdamW)
run one step at a time, once as the plain MONAI loop runs them (float32, contiguous) and once as ``medseg``
runs them (its ``runtime`` defaults: bf16 autocast where the CPU has it, channels-last), not compiled. Each
phase (forward, loss, backward, optimiser) is timed on its own, the median over the steps, the two set-ups
interleaved. One more profiled step of ``medseg``'s set-up gives the operators' share of the CPU time,
grouped by kind. The data pipeline is not in these steps: its share is the benchmark's ``data_wait_fraction``.
Results: ``docs/results/train_profile.json``.
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

RESULT = common.REPO / "docs" / "results" / "train_profile.json"
PHASES = ("forward", "loss", "backward", "optimizer")
#: operator-name fragments -> the kind reported (the first match wins)
KINDS = (
    ("convolution_backward", "convolution_backward"),
    ("convolutionbackward", "convolution_backward"),  # the autograd node wrapping the kernel above
    ("conv", "convolution_forward"),
    ("prelu", "prelu"),
    ("instance_norm", "normalisation"),
    ("batch_norm", "normalisation"),
    ("norm", "normalisation"),
    ("softmax", "loss"),
    ("log_softmax", "loss"),
    ("nll", "loss"),
    ("copy_", "copies_and_casts"),
    ("to_copy", "copies_and_casts"),
    ("_to", "copies_and_casts"),
    ("adam", "optimiser"),
    ("_foreach", "optimiser"),
)


class Phases:
    """One set-up of the benchmark's step: the network in a precision and memory format, DiceCE and AdamW."""

    def __init__(self, precision: str, memory_format: str, patch: int):
        import dataclasses

        import torch
        import train_vs_monai
        from monai.losses import DiceCELoss

        from medseg_monai.networks import build_network
        from medseg_monai.networks.precision import FastForward, resolve_memory_format, resolve_precision

        torch.manual_seed(0)
        config = train_vs_monai.config_for(patch, 1)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, in_channels=1))
        self.network = build_network(config).train()
        layout = resolve_memory_format(memory_format, 3, config.model.name)
        self.network = self.network.to(memory_format=layout)
        self.dtype = resolve_precision(precision, torch.device("cpu"))
        self.forward = FastForward(self.network, torch.device("cpu"), self.dtype, layout)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), 1e-3, weight_decay=1e-5)
        generator = torch.Generator().manual_seed(0)
        self.image = torch.randn(4, 1, patch, patch, patch, generator=generator)
        self.label = torch.randint(0, 3, (4, 1, patch, patch, patch), generator=generator).float()
        self.settings = {
            "precision": str(self.dtype).replace("torch.", "") if self.dtype else "float32",
            "memory_format": str(layout).replace("torch.", ""),
        }

    def __call__(self) -> dict[str, float]:
        marks = [time.perf_counter()]
        self.optimizer.zero_grad(set_to_none=True)
        out = self.forward(self.image)
        marks.append(time.perf_counter())
        loss = self.loss(out, self.label)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        self.optimizer.step()
        loss.item()
        marks.append(time.perf_counter())
        return {phase: b - a for phase, a, b in zip(PHASES, marks, marks[1:])}


def operator_shares(step: Phases) -> dict[str, float]:
    """Share of the self CPU time of one profiled step per operator kind (``KINDS``; the rest is ``other``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.lower()
        kind = next((label for fragment, label in KINDS if fragment in name), "other")
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {kind: round(t / whole, 3) for kind, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    patch = 64 if args.quick else 96
    setups = {"monai_loop": Phases("fp32", "contiguous", patch), "medseg_eager": Phases("auto", "auto", patch)}
    for step in setups.values():
        step(), step()  # warm-up: kernels picked, buffers allocated
    timed: dict[str, list[dict[str, float]]] = {key: [] for key in setups}
    for i in range(args.steps):
        for key, step in setups.items() if i % 2 == 0 else reversed(setups.items()):
            timed[key].append(step())
    rows = {}
    for key, step in setups.items():
        phases = {phase: round(statistics.median(t[phase] for t in timed[key]), 4) for phase in PHASES}
        rows[key] = {**step.settings, "seconds": phases, "step_seconds": round(sum(phases.values()), 4)}
    base = rows["monai_loop"]
    for phase in PHASES:
        mine = rows["medseg_eager"]["seconds"][phase]
        rows["medseg_eager"].setdefault("speedup", {})[phase] = round(base["seconds"][phase] / mine, 2)
    rows["medseg_eager"]["step_speedup"] = round(base["step_seconds"] / rows["medseg_eager"]["step_seconds"], 2)
    rows["medseg_eager"]["operator_shares"] = operator_shares(setups["medseg_eager"])
    result = {"patch": [patch] * 3, "batch": 4, "threads": args.threads, "steps": args.steps, "setups": rows}
    result["machine"] = common.machine()
    if not args.quick:
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
