"""Benchmark: a training epoch of ``medseg train`` against a plain MONAI tutorial loop (same network, data,
batch and patch).

    python bench/train_vs_monai.py            # 96^3 patches, 20 steps an epoch
    python bench/train_vs_monai.py --quick    # 64^3 patches, 10 steps an epoch

Both train the spleen bundle's network from the same seed on the same synthetic CT cases with the
same transform chain (``build_train_transforms``: preprocessing cached by ``CacheDataset``, then
patch sampling and augmentation), batch 2 with 2 patches per image and DiceCE loss, each in a fresh
process. The plain loop is the MONAI tutorial's: ``DataLoader(num_workers=0)``, float32, ``zero_grad ->
forward -> loss -> backward -> step``, ``loss.item()`` every step. ``medseg`` is ``medseg_monai.train``
with its defaults (``SupervisedTrainer``, ``ThreadDataLoader``, ``runtime.precision=auto``) and
``train.compile=on``, which ``auto`` picks for runs of 400 steps or more (``medseg_eager``: ``off``, as for
shorter runs). The second epoch of each is timed (the first builds caches, picks kernels and compiles);
validation is left out of all. The compilation's one-off cost (with an empty TorchInductor cache) is the
difference of the first epochs of ``medseg`` and ``medseg_eager`` in the first round.

A shared virtual machine's speed drifts by a factor of two within minutes, so the three loops run in
``--rounds`` rounds of alternating order (plain, eager, compiled; then compiled, eager, plain; ...) and the
speedups are the ratios of the epoch times averaged over the rounds; each round's own ratios are kept in the
details. Results: ``summary.json`` section ``train``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def config_for(patch: int, steps: int, precision: str = "auto", compile_setting: str = "auto"):
    from medseg_monai.config import DataConfig, ModelConfig, RunConfig, RuntimeConfig, TrainConfig

    return RunConfig(
        data=DataConfig(
            data_dir=str(common.ct_train_data(common.WORK)),
            spatial_dims=3,
            patch_size=(patch,) * 3,
            intensity="ct",
            ct_window=common.RECIPE_HU,
            target_spacing=common.RECIPE_SPACING,
            samples_per_image=2,
            val_fraction=0.2,
            label_values=(0, 1, 2),
            label_names=("background", "organ", "lesion"),
        ),
        model=ModelConfig(name="unet"),
        train=TrainConfig(
            epochs=2,
            iterations_per_epoch=steps,
            batch_size=2,
            learning_rate=1e-3,
            val_interval=2,
            compile=compile_setting,
        ),
        runtime=RuntimeConfig(precision=precision),
    )


def run_medseg(patch: int, steps: int, work: Path, compile_setting: str) -> dict:
    import shutil

    from medseg_monai.training.trainer import train

    shutil.rmtree(work, ignore_errors=True)
    result = train(config_for(patch, steps, compile_setting=compile_setting), work)
    first, row = result.history[0], result.history[1]
    step_s = row["epoch_time_s"] - row.get("val_time_s", 0.0)
    return {
        "epoch_seconds": step_s,
        "data_wait_seconds": row["data_wait_s"],
        "precision": result.config.runtime.precision,
        "compile": compile_setting,
        "first_epoch_seconds": first["epoch_time_s"] - first.get("val_time_s", 0.0),
    }


def run_plain_monai(patch: int, steps: int) -> dict:
    import torch
    from monai.data import CacheDataset, DataLoader, list_data_collate
    from monai.losses import DiceCELoss

    from medseg_monai.data.properties import resolve_data_config
    from medseg_monai.networks import build_network
    from medseg_monai.training.trainer import make_splits
    from medseg_monai.transforms.chains import build_train_transforms
    from medseg_monai.utils import set_seed

    config = config_for(patch, steps)
    set_seed(config.train.seed)
    train_items, _ = make_splits(config)
    data_cfg = resolve_data_config(config.data, train_items)
    config = config.__class__(data=data_cfg, model=config.model, train=config.train, infer=config.infer)
    dataset = CacheDataset(train_items, build_train_transforms(data_cfg), cache_rate=1.0, progress=False)
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=0, collate_fn=list_data_collate)
    network = build_network(config)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-5)
    epochs = []
    for _ in range(2):
        network.train()
        done, wait, start = 0, 0.0, time.perf_counter()
        while done < steps:
            batches = iter(loader)
            while done < steps:
                t0 = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                wait += time.perf_counter() - t0
                optimizer.zero_grad()
                loss = loss_function(network(batch["image"]), batch["label"])
                loss.backward()
                optimizer.step()
                loss.item()
                done += 1
        epochs.append({"epoch_seconds": time.perf_counter() - start, "data_wait_seconds": wait})
    return epochs[1]


def pooled(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per loop: epoch and data-wait seconds averaged over the rounds; first-epoch time and CPU steal from the
    first round."""
    out = {}
    for name, first in rounds[0].items():
        rows = [r[name] for r in rounds]
        out[name] = {
            **first,
            **{key: sum(row[key] for row in rows) / len(rows) for key in ("epoch_seconds", "data_wait_seconds")},
        }
        steals = [row["cpu_steal_fraction"] for row in rows if row.get("cpu_steal_fraction") is not None]
        out[name]["cpu_steal_fraction"] = max(steals) if steals else None
    return out


def worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pipeline == "monai_loop":
        result = run_plain_monai(args.patch, args.steps)
    else:  # "medseg": compiled, as `train.compile=auto` does for runs of >= 400 steps; "medseg_eager": not compiled
        setting = "off" if args.pipeline == "medseg_eager" else "on"
        result = run_medseg(args.patch, args.steps, common.WORK / "train_bench_run", setting)
    Path(args.result).write_text(json.dumps(result))


def run_rounds(args: argparse.Namespace) -> list[dict[str, dict]]:
    """The three loops, each in a fresh process, ``args.rounds`` times in alternating order; one dict per round."""
    names = ("monai_loop", "medseg_eager", "medseg")
    rounds: list[dict[str, dict]] = []
    # TorchInductor's cache, cold in the first round: the compile time a first run pays
    with tempfile.TemporaryDirectory() as cache:
        for round_index in range(args.rounds):
            results: dict[str, dict] = {}
            for name in names if round_index % 2 == 0 else names[::-1]:
                common.log(
                    f"train round {round_index + 1}/{args.rounds}: {name}, {args.steps} steps of batch 2 x 2 "
                    f"patches of {args.patch}^3 ..."
                )
                results[name] = common.run_worker(
                    "train_vs_monai",
                    ["--pipeline", name, "--patch", str(args.patch), "--steps", str(args.steps)],
                    args.threads,
                    env={"TORCHINDUCTOR_CACHE_DIR": cache},
                )
            rounds.append(results)
    return rounds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument(
        "--rounds", type=int, help="rounds of the three loops in alternating order (default 2, --quick 1)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.patch = args.patch or (64 if args.quick else 96)
    args.steps = args.steps or (10 if args.quick else 20)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.worker:
        worker(args)
        return {}
    common.ct_train_data(common.WORK)
    rounds = run_rounds(args)
    results = pooled(rounds)
    plain, ours, eager = results["monai_loop"], results["medseg"], results["medseg_eager"]
    summary = {
        "epoch_speedup": round(plain["epoch_seconds"] / ours["epoch_seconds"], 2),
        "eager_epoch_speedup": round(plain["epoch_seconds"] / eager["epoch_seconds"], 2),
        # the one-off cost of compiling, and the steps it takes to pay it back
        "compile_seconds": round(ours["first_epoch_seconds"] - eager["first_epoch_seconds"], 1),
        # None when the compiled epoch was not the faster one in this run
        "compile_break_even_steps": (
            round(
                (ours["first_epoch_seconds"] - eager["first_epoch_seconds"])
                / ((eager["epoch_seconds"] - ours["epoch_seconds"]) / args.steps)
            )
            if eager["epoch_seconds"] > ours["epoch_seconds"]
            else None
        ),
        "data_wait_fraction": round(ours["data_wait_seconds"] / ours["epoch_seconds"], 4),
        "baseline_data_wait_fraction": round(plain["data_wait_seconds"] / plain["epoch_seconds"], 4),
    }
    per_round = [
        {
            "epoch_speedup": round(r["monai_loop"]["epoch_seconds"] / r["medseg"]["epoch_seconds"], 2),
            "eager_epoch_speedup": round(r["monai_loop"]["epoch_seconds"] / r["medseg_eager"]["epoch_seconds"], 2),
        }
        for r in rounds
    ]
    common.update_summary(
        "train",
        summary,
        {
            "patch": args.patch,
            "steps": args.steps,
            "batch": 2,
            "samples_per_image": 2,
            "threads": args.threads,
            "rounds": args.rounds,
            "pipelines": results,
            "per_round": per_round,
        },
    )
    common.log(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
