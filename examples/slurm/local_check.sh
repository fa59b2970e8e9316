#!/bin/bash
# Try the two SLURM scripts on one machine, at 2 processes, before submitting them to a cluster:
#   1. torchrun_multinode.sbatch train: two launchers ("nodes") meet at one c10d rendezvous on 127.0.0.1 and
#      train one DistributedDataParallel model on a synthetic dataset;
#   2. predict_array.sbatch as a 2-task array (SLURM_ARRAY_TASK_ID set by hand), against one process;
#   3. an array task killed after its third case, then submitted again: it redoes only its unfinished cases;
#   4. torchrun_multinode.sbatch predict with two launchers; its masks must equal the array tasks' (one thread each).
#
#   bash examples/slurm/local_check.sh [WORK_FOLDER]      (default runs/slurm_check; about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/slurm_check}
python=${PYTHON:-python}
medseg=${MEDSEG:-medseg}
here=examples/slurm
rm -rf "$work"
mkdir -p "$work"
seconds() { "$python" -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1"; }

"$medseg" -q synth --dims 3 --cases 24 --shape 64 64 40 -o "$work/data"
mkdir -p "$work/scans"
cp "$work"/data/imagesTr/*.nii.gz "$work/scans/"

start=$(date +%s.%N)
for node in 0 1; do
    NODE_COUNT=2 PYTHON="$python" RDZV_PORT=29531 bash "$here/torchrun_multinode.sbatch" train \
        --data "$work/data" --out "$work/run" --epochs 40 --patch-size 48 48 32 --batch-size 2 \
        --learning-rate 2e-3 --intensity zscore --val-interval 5 --label-names background organ lesion \
        > "$work/train_node$node.log" 2>&1 &
done
wait
train_s=$(seconds "$start")
echo "1. train on 2 nodes x 1 process: $train_s s; $(grep 'best validation' "$work/train_node0.log")"

start=$(date +%s.%N)
OMP_NUM_THREADS=2 "$medseg" -q predict --model "$work/run" -i "$work/scans" -o "$work/masks_single" > /dev/null
single=$(seconds "$start")
start=$(date +%s.%N)
for part in 0 1; do
    SLURM_ARRAY_TASK_ID=$part SLURM_CPUS_PER_TASK=1 MEDSEG="$medseg" bash "$here/predict_array.sbatch" \
        "$work/run" "$work/scans" "$work/masks_array" 2 > "$work/array_$part.log" 2>&1 &
done
wait
array_s=$(seconds "$start")
echo "2. predict 24 cases: 1 process x 2 threads $single s, 2 array tasks x 1 thread $array_s s"

SLURM_ARRAY_TASK_ID=0 SLURM_CPUS_PER_TASK=1 MEDSEG="$medseg" bash "$here/predict_array.sbatch" \
    "$work/run" "$work/scans" "$work/masks_killed" 2 > "$work/killed_0.log" 2>&1 &
first=$!
SLURM_ARRAY_TASK_ID=1 SLURM_CPUS_PER_TASK=1 MEDSEG="$medseg" bash "$here/predict_array.sbatch" \
    "$work/run" "$work/scans" "$work/masks_killed" 2 > "$work/killed_1.log" 2>&1 &
victim=$!
until [ "$(grep -c 'written in' "$work/killed_1.log" 2> /dev/null || true)" -ge 3 ]; do sleep 0.02; done
kill -9 "$victim"
wait "$victim" || true
wait "$first"
SLURM_ARRAY_TASK_ID=1 SLURM_CPUS_PER_TASK=1 MEDSEG="$medseg" bash "$here/predict_array.sbatch" \
    "$work/run" "$work/scans" "$work/masks_killed" 2 > "$work/killed_1_again.log" 2>&1
"$python" - "$work/masks_killed/predict_manifest.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
print(f"3. task 1 killed after 3 cases and run again: {summary['cases_done']} of {summary['cases_total']} cases done, "
      f"{summary['written']} written, {summary['skipped']} kept from the killed task, {summary['failed']} failed")
PY

start=$(date +%s.%N)
for node in 0 1; do
    NODE_COUNT=2 SLURM_CPUS_PER_TASK=1 PYTHON="$python" RDZV_PORT=29532 bash "$here/torchrun_multinode.sbatch" predict \
        --model "$work/run" -i "$work/scans" -o "$work/masks_torchrun" > "$work/predict_node$node.log" 2>&1 &
done
wait
"$python" - "$work" "$(seconds "$start")" "$train_s" "$single" "$array_s" <<'PY'
import json, re, sys
from pathlib import Path
import nibabel as nib
import numpy as np
work, torchrun_s, train_s, single_s, array_s = Path(sys.argv[1]), *map(float, sys.argv[2:])
names = sorted(p.name for p in (work / "masks_array").glob("*.nii.gz"))
load = lambda folder, name: np.asarray(nib.load(work / folder / name).dataobj)
same = all(np.array_equal(load("masks_array", n), load("masks_torchrun", n)) for n in names)
# one thread against two: the network's sums run in another order, so a few boundary voxels may differ
agree = float(np.mean([np.mean(load("masks_torchrun", n) == load("masks_single", n)) for n in names]))
print(f"4. predict on 2 nodes x 1 process: {torchrun_s} s; {len(names)} masks equal to the array tasks': {same}; "
      f"voxels agreeing with the 2-thread process: {100 * agree:.3f} %")
best = re.search(r"best validation mean Dice ([0-9.]+)", (work / "train_node0.log").read_text())
result = {
    "cases": len(names),
    "train": {"nodes": 2, "processes_per_node": 1, "seconds": train_s, "best_val_mean_dice": float(best.group(1))},
    "predict": {
        "single_process_2_threads": {"seconds": single_s, "cases_per_minute": round(60 * len(names) / single_s, 1)},
        "array_2_tasks_1_thread": {"seconds": array_s, "cases_per_minute": round(60 * len(names) / array_s, 1)},
        "torchrun_2_nodes_1_thread": {"seconds": torchrun_s, "cases_per_minute": round(60 * len(names) / torchrun_s, 1)},
        "torchrun_equals_array": same,
        "torchrun_voxel_agreement_with_single": round(agree, 6),
    },
    "killed_task": json.loads((work / "masks_killed" / "predict_manifest.json").read_text())["summary"],
}
(work / "slurm_check.json").write_text(json.dumps(result, indent=2) + "\n")
print(f"results: {work / 'slurm_check.json'}")
sys.exit(0 if same and names else 1)
PY
