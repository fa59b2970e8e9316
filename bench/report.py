"""Write the table of ``bench/results/summary.json`` into docs/performance.md (between its bench markers).

python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DOC = common.REPO / "docs" / "performance.md"
BLOCKS = ("summary", "pipelines", "train", "scale")
TARGETS = {
    "predict.speedup_matched": ("predict at the recipe's windows, speed vs the recipe", ">= 3"),
    "predict.speedup_default": ("predict at our defaults, speed vs the recipe", ">= 5"),
    "predict.rss_ratio": ("peak RSS vs the recipe", "<= 0.3"),
    "predict.dice_vs_recipe_matched": ("label Dice vs the recipe's fp32 masks, matched windows", ">= 0.99"),
    "predict.dice_vs_recipe_default": ("label Dice vs the recipe's fp32 masks, our defaults", "-"),
    "predict.network_fraction": ("network share of our time, matched windows", ">= 0.85"),
    "network.bf16_speedup": ("network alone: bf16 autocast vs fp32", "-"),
    "network.bf16_channels_last_speedup": ("network alone: bf16 + channels-last vs fp32", "-"),
    "network.fp32_channels_last_speedup": ("network alone: fp32 channels-last vs fp32", "-"),
    "network.bf16_argmax_agreement": ("network alone: bf16 argmax agreement with fp32", "-"),
    "network.window_batch_1_vs_4": ("time per window, batch of 1 vs batch of 4 (default)", "-"),
    "network.window_batch_8_vs_4": ("time per window, batch of 8 vs batch of 4 (default)", "-"),
    "train.epoch_speedup": ("training epoch vs the plain MONAI loop", ">= 2"),
    "train.data_wait_fraction": ("training: share of step time waiting for data", "<= 0.05"),
    "train.baseline_data_wait_fraction": ("plain MONAI loop: share waiting for data", "-"),
    "train.eager_epoch_speedup": ("training epoch, not compiled (`--compile off`), vs the plain MONAI loop", "-"),
    "train.compile_seconds": ("one-off cost of compiling the network, empty cache (s)", "-"),
    "train.compile_break_even_steps": ("steps after which compiling has paid for itself", "-"),
    "small.case_seconds": ("hippocampus-sized case, steady, TTA off (s)", "<= 0.3"),
    "small.case_speedup": ("hippocampus-sized case vs a MONAI loop", "-"),
    "small.startup_seconds": ("cold start of `medseg predict` on one file (s)", "<= 5"),
    "small.startup_speedup": ("cold start vs a plain MONAI script", "-"),
    "small.import_seconds": ("of which importing the CLI (s)", "-"),
    "small.import_monai_seconds": ("importing MONAI (and torch) alone (s)", "-"),
    "precision.bf16_min_dice_vs_fp32": ("lowest label Dice of bf16 vs fp32 masks, models checked", ">= 0.99"),
}


def table(summary: dict) -> str:
    lines = ["| key | what | measured | target |", "|---|---|---|---|"]
    for key, (what, target) in TARGETS.items():
        section, name = key.split(".")
        value = summary.get(section, {}).get(name)
        if value is not None:
            lines.append(f"| `{key}` | {what} | {value} | {target} |")
    run, machine = summary.get("run", {}), summary.get("machine", {})
    sections = run.get("sections", [])
    invocation = "python bench/predict_vs_monai.py" + (" --quick" if run.get("quick") else "")
    if sections and len(sections) < 6:
        invocation += " --sections " + " ".join(sections)
    lines.append("")
    lines.append(
        f"Last measured with `{invocation}` ({run.get('seconds', '?')} s)"
        + (
            "; the other sections keep the figures of the invocation before it"
            if sections and len(sections) < 6
            else ""
        )
        + f". {machine.get('cpu_count', '?')} CPU cores, torch {machine.get('torch', '?')}, "
        f"AVX512-BF16 {'yes' if machine.get('avx512_bf16') else 'no'}. Every figure is a ratio of two runs "
        "in one invocation, except the seconds."
    )
    return "\n".join(lines)


PIPELINE_NOTES = {
    "monai_recipe": "the spleen bundle's recipe, fp32, every window",
    "medseg_matched": "ours at the recipe's windows (overlap 0.5, constant), defaults otherwise",
    "medseg_default": "ours at our defaults (overlap 0.25, gaussian)",
    "matched_fp32_all_windows": "recipe's windows, fp32, contiguous, every window: the pipeline alone",
    "matched_bf16_all_windows": "... plus bf16 autocast and channels-last",
    "matched_fp32_body_windows": "... fp32 and contiguous, windows over the body only",
    "matched_labels_inversion": "all levers, but labels mapped back nearest-neighbour (`--inversion labels`)",
}


def pipelines(summary: dict) -> str:
    details = summary.get("details", {}).get("predict")
    if not details:
        return "(no predict section in summary.json yet)"
    lines = [
        "| pipeline | what | s/case | speed vs recipe | peak RSS GiB | RSS vs recipe | network share "
        "| label Dice vs recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(
        details["pipelines"].items(),
        key=lambda item: list(PIPELINE_NOTES).index(item[0]) if item[0] in PIPELINE_NOTES else 99,
    )
    for name, row in ordered:
        lines.append(
            f"| `{name}` | {PIPELINE_NOTES.get(name, '')} | {row['seconds_per_case']} | {row['speedup']} | "
            f"{row['peak_rss_gib']} | {row['rss_ratio']} | {row['network_fraction']} | "
            f"{row.get('dice_vs_recipe', '-')} |"
        )
    depths = ", ".join(str(d) for d in details["depths"])
    lines += ["", f"Cases: 512 x 512 x ({depths}) synthetic CT, {details['threads']} threads per process."]
    return "\n".join(lines)


def training(summary: dict) -> str:
    details = summary.get("details", {}).get("train")
    if not details:
        return "(no train section in summary.json yet)"
    rows = details["pipelines"]
    lines = [
        "| loop | s per epoch | vs the plain loop | waiting for data | first epoch, s | CPU stolen by other machines |",
        "|---|---|---|---|---|---|",
    ]
    plain = rows["monai_loop"]["epoch_seconds"]
    for name in ("monai_loop", "medseg_eager", "medseg"):
        if name not in rows:
            continue
        row = rows[name]
        first = row.get("first_epoch_seconds")
        steal = row.get("cpu_steal_fraction")
        lines.append(
            f"| `{name}` | {row['epoch_seconds']:.2f} | {plain / row['epoch_seconds']:.2f} | "
            f"{row['data_wait_seconds'] / row['epoch_seconds']:.1%} | {'-' if first is None else f'{first:.1f}'} | "
            f"{'-' if steal is None else f'{steal:.1%}'} |"
        )
    lines += [
        "",
        f"{details['steps']} steps of batch {details['batch']} x {details['samples_per_image']} patches of "
        f"{details['patch']}^3, {details['threads']} threads; "
        "`medseg` compiled (`train.compile=on`), `medseg_eager` not.",
    ]
    return "\n".join(lines)


def scale(summary: dict) -> str:
    details = summary.get("details", {}).get("scale")
    if not details:
        return "(no scale section in summary.json yet: run `python bench/scale_out.py`)"
    lines = ["| processes x threads | cases/min | 1 process x same threads, cases/min | ratio |", "|---|---|---|---|"]
    for n, row in details["rows"].items():
        lines.append(
            f"| {n} x 1 | {row['parts_cases_per_minute']} | {row['single_cases_per_minute']} | {row['ratio']} |"
        )
    lines += [
        "",
        f"{details['cases']} hippocampus-sized cases on {details['cpu_count']} cores, model loading included.",
    ]
    return "\n".join(lines)


def main() -> int:
    summary = json.loads(common.SUMMARY.read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    makers = {"summary": table, "pipelines": pipelines, "train": training, "scale": scale}
    for block in BLOCKS:
        start, end = f"<!-- bench-{block}:start -->", f"<!-- bench-{block}:end -->"
        if start not in text or end not in text:
            raise SystemExit(f"{DOC}: the markers {start} / {end} are missing")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{makers[block](summary)}\n{end}{tail}"
    DOC.write_text(text)
    print(f"wrote the benchmark tables into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
