"""Golden corpus: run the public ``medseg`` CLI over a fixed set of cases and compare two checkouts' outputs.

Three subcommands, each run with the project's virtual environment (``.venv/bin/python bench/golden_corpus.py ...``):

``models --checkout DIR --out MODELS``
    Builds, once, what the corpus needs with that checkout's CLI: synthetic 2D PNG and 3D NIfTI sets
    (``medseg synth``), a tiny 2D and 3D unet (``medseg train``, a few epochs), an exported 2D model
    (``medseg export``, ONNX when onnx is installed, else TorchScript), and inputs derived from the 3D test set:
    MHA, NRRD (SimpleITK), a DICOM MR series (``tests/dicom_helpers.py`` of the checkout) and a batch holding a
    truncated ``.nii.gz``.

``run --checkout DIR --models MODELS --out TREE``
    Runs every case of :func:`corpus` as ``python -m medseg_monai.cli ...`` subprocesses with ``PYTHONPATH=DIR``
    (one at a time, 2 threads, CPU), each into ``TREE/CASE/out``; every invocation leaves ``command.txt``,
    ``rc.txt``, ``stdout.txt`` and ``stderr.txt`` in ``TREE/CASE`` (``TREE/CASE/STEP`` for multi-step cases).
    ``TREE/corpus.json`` records the checkout, paths and timings (not compared).

``compare TREE_A TREE_B [--ignore-logger-names]``
    Compares every file of both trees: masks and maps (voxels, dtype, geometry, NIfTI header), PNG/TIF pages,
    DICOM (every element except the per-run UIDs, dates and times), JSON (after dropping run-dependent keys:
    :data:`VOLATILE_KEYS`), CSV (bytes, else rows without time columns), HTML and text (after replacing the tree
    and checkout paths, clock times, durations and rates); prints one line per differing file and
    ``N files compared, M differ``; exits 1 when M > 0.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TINY_UNET = '{"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}'
#: JSON keys whose values change from one run of the same code to the next (found by diffing two runs)
VOLATILE_KEYS = frozenset({"started", "updated", "finished", "seconds", "stage_seconds", "mtime_ns"})
#: DICOM attributes a writer makes new on every run
VOLATILE_DICOM = frozenset(
    {"SOPInstanceUID", "SeriesInstanceUID", "MediaStorageSOPInstanceUID", "DimensionOrganizationUID"}
)
DICOM_TIME_VRS = ("DA", "DT", "TM")  # dates and times: every one is the writing run's clock
TIME_COLUMN = re.compile(r"(^|_)(time|seconds|elapsed|duration|wall|started|finished|updated)(_s)?$|_s$")
MASK_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


# ---------------------------------------------------------------------------------------------- running the CLI
def cli_env(checkout: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PYTHONPATH")}
    n = str(threads)
    env.update(
        PYTHONPATH=str(checkout),
        OMP_NUM_THREADS=n,
        MKL_NUM_THREADS=n,
        OPENBLAS_NUM_THREADS=n,
        CUDA_VISIBLE_DEVICES="",
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        TZ="UTC",
    )
    return env


def medseg(args: list, log_dir: Path, env: dict[str, str], python: str) -> tuple[int, float]:
    """Run ``python -m medseg_monai.cli ARGS`` in ``log_dir``; write command/rc/stdout/stderr there."""
    argv = [python, "-m", "medseg_monai.cli", *map(str, args)]
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "command.txt").write_text(shlex.join(argv[1:]) + "\n")
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=log_dir, env=env, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - start
    for name, text in (("rc.txt", f"{done.returncode}\n"), ("stdout.txt", done.stdout), ("stderr.txt", done.stderr)):
        (log_dir / name).write_text(text)
    return done.returncode, wall


def cmd_models(a: argparse.Namespace) -> int:
    checkout, out = a.checkout.resolve(), a.out.resolve()
    env, log, times = cli_env(checkout, a.threads), out / "logs", {}

    def step(name: str, *args) -> None:
        rc, times[name] = medseg(list(args), log / name, env, a.python)
        print(f"  {name}: rc {rc}, {times[name]:.1f} s", flush=True)
        if rc:
            sys.exit(f"models: step {name} failed (rc {rc}); see {log / name}/stderr.txt")

    start = time.perf_counter()
    step(
        "synth2d",
        "synth",
        "--dims",
        "2",
        "--cases",
        "8",
        "--shape",
        "64",
        "64",
        "--seed",
        "0",
        "--out",
        out / "synth2d",
    )
    step(
        "test2d", "synth", "--dims", "2", "--cases", "3", "--shape", "64", "64", "--seed", "5", "--out", out / "test2d"
    )
    step(
        "synth3d",
        "synth",
        "--dims",
        "3",
        "--cases",
        "6",
        "--shape",
        "32",
        "32",
        "24",
        "--seed",
        "0",
        "--out",
        out / "synth3d",
    )
    step(
        "test3d",
        "synth",
        "--dims",
        "3",
        "--cases",
        "3",
        "--shape",
        "32",
        "32",
        "24",
        "--seed",
        "5",
        "--out",
        out / "test3d",
    )
    common = [
        "--network",
        "unet",
        "--network-options",
        TINY_UNET,
        "--batch-size",
        "2",
        "--learning-rate",
        "0.01",
        "--device",
        "cpu",
        "--seed",
        "0",
        "--no-tensorboard",
    ]
    step(
        "run2d",
        "train",
        "--data",
        out / "synth2d",
        "--out",
        out / "run2d",
        "--epochs",
        "8",
        "--patch-size",
        "32",
        "32",
        "--samples-per-image",
        "1",
        *common,
    )
    step(
        "run3d",
        "train",
        "--data",
        out / "synth3d",
        "--out",
        out / "run3d",
        "--epochs",
        "30",
        "--patch-size",
        "16",
        "16",
        "16",
        "--samples-per-image",
        "2",
        "--foreground-ratio",
        "0.9",
        *common,
    )  # enough epochs to find the lesion
    try:
        import onnx  # noqa: F401

        artefact = out / "run2d.onnx"
    except ImportError:
        artefact = out / "run2d.ts"
    step("export", "export", "--model", out / "run2d", "--out", artefact)

    import nibabel as nib
    import SimpleITK as sitk

    inputs = out / "inputs"
    for name in ("png", "nifti", "mha", "nrrd", "broken"):
        (inputs / name).mkdir(parents=True, exist_ok=True)
    for src in sorted((out / "test2d").glob("case_???.png")):
        shutil.copy2(src, inputs / "png" / src.name)
    volumes = sorted((out / "test3d" / "imagesTr").glob("*.nii.gz"))
    for src in volumes:
        shutil.copy2(src, inputs / "nifti" / src.name)
        stem = src.name.removesuffix(".nii.gz")
        read = sitk.ReadImage(str(src))
        image = sitk.GetImageFromArray(sitk.GetArrayFromImage(read))  # pixels and geometry, not the NIfTI header
        image.CopyInformation(read)
        sitk.WriteImage(image, str(inputs / "mha" / f"{stem}.mha"))
        sitk.WriteImage(image, str(inputs / "nrrd" / f"{stem}.nrrd"))
    good = volumes[0].read_bytes()
    (inputs / "broken" / "a.nii.gz").write_bytes(good)
    (inputs / "broken" / "b_broken.nii.gz").write_bytes(good[:500])  # a truncated gzip stream
    (inputs / "broken" / "c.nii.gz").write_bytes(volumes[1].read_bytes())
    sys.path.insert(0, str(checkout))
    from tests.dicom_helpers import write_mr_series

    data = np.asarray(nib.load(str(volumes[0])).dataobj, dtype=np.float64)
    scaled = np.round((data - data.min()) / max(np.ptp(data), 1e-9) * 1000).astype(np.uint16)
    write_mr_series(inputs / "dicom" / "series_01", scaled, spacing=(1.2, 1.2, 2.5), seed=7)
    info = {
        "checkout": str(checkout),
        "artefact": artefact.name,
        "seconds": round(time.perf_counter() - start, 1),
        "steps": {k: round(v, 1) for k, v in times.items()},
    }
    (out / "models.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"models in {out} ({info['seconds']} s)")
    return 0


def corpus(m: Path, root: Path, bundle: Path) -> dict[str, list[tuple[str, list]]]:
    """Case name -> its steps (step name, medseg arguments), in the order they run."""
    artefact = json.loads((m / "models.json").read_text())["artefact"]
    run2d, run3d, i = m / "run2d", m / "run3d", m / "inputs"
    nifti = sorted((i / "nifti").glob("*.nii.gz"))

    def predict(case: str, model: Path, inputs: list, *extra) -> list:
        return [
            "predict",
            "--model",
            model,
            "--input",
            *inputs,
            "--output",
            root / case / "out",
            "--device",
            "cpu",
            *extra,
        ]

    cases = {
        "png2d": [predict("png2d", run2d, [i / "png"], "--report")],
        "nifti3d": [predict("nifti3d", run3d, [i / "nifti"])],
        "mha": [predict("mha", run3d, [i / "mha"])],
        "nrrd": [predict("nrrd", run3d, [str(i / "nrrd" / "*.nrrd")])],
        "dicom_seg": [predict("dicom_seg", run3d, [i / "dicom" / "series_01"])],
        "dicom_nifti": [predict("dicom_nifti", run3d, [i / "dicom" / "series_01"], "--output-format", "nifti")],
        "tta_post": [
            predict(
                "tta_post",
                run3d,
                nifti,
                "--tta-flips",
                "--keep-largest-component",
                "--fill-holes",
                "--min-component-size",
                "3",
            )
        ],
        "stitching_full": [predict("stitching_full", run3d, [i / "nifti"], "--stitching", "full")],
        "inversion_linear": [predict("inversion_linear", run3d, [i / "nifti"], "--inversion", "linear")],
        "maps3d": [
            predict(
                "maps3d", run3d, [i / "nifti"], "--save-probabilities", "--save-uncertainty", "--tta-flips", "--report"
            )
        ],
        "maps2d": [
            predict(
                "maps2d",
                run2d,
                [i / "png"],
                "--save-probabilities",
                "--probabilities-dtype",
                "float32",
                "--save-uncertainty",
                "--tta-flips",
            )
        ],
        "statistics": [predict("statistics", run3d, [i / "nifti"], "--statistics", "--report")],
        "failing": [predict("failing", run3d, [i / "broken"], "--report")],
        "skip_done": [
            ("first", predict("skip_done", run3d, [i / "nifti"])),
            ("second", predict("skip_done", run3d, [i / "nifti"])),
        ],
        "shards": [
            (f"part{k}", predict("shards", run2d, [i / "png"], "--num-parts", "2", "--part-id", str(k), "--report"))
            for k in (0, 1)
        ],
        "evaluate": [
            [
                "evaluate",
                "--pred",
                root / "nifti3d" / "out",
                "--truth",
                m / "test3d",
                "--out",
                root / "evaluate" / "out",
                "--surface",
            ]
        ],
        "exported": [predict("exported", m / artefact, [i / "png"])],
        "bundle": [
            [
                "bundle",
                "run",
                bundle,
                "inference",
                "--dataset_dir",
                i / "png",
                "--output_dir",
                root / "bundle" / "out",
                "--ckpt_path",
                run2d / "checkpoints" / "best.pt",
                "--config_path",
                run2d / "config.json",
                "--network_options",
                TINY_UNET,
                "--device",
                "cpu",
            ]
        ],
    }
    return {name: [s if isinstance(s, tuple) else ("", s) for s in steps] for name, steps in cases.items()}


def cmd_run(a: argparse.Namespace) -> int:
    checkout, models, root = a.checkout.resolve(), a.models.resolve(), a.out.resolve()
    if root.exists() and any(root.iterdir()):
        sys.exit(f"run: {root} is not empty; remove it first")
    root.mkdir(parents=True, exist_ok=True)
    env, results, start = cli_env(checkout, a.threads), {}, time.perf_counter()
    for case, steps in corpus(models, root, checkout / "bundles" / "unet2d_png").items():
        if a.only and case not in a.only:
            continue
        for step, args in steps:
            rc, wall = medseg(args, root / case / step if step else root / case, env, a.python)
            results[f"{case}/{step}" if step else case] = {"rc": rc, "seconds": round(wall, 1)}
            print(f"  {case}{'/' + step if step else ''}: rc {rc}, {wall:.1f} s", flush=True)
    info = {
        "checkout": str(checkout),
        "models": str(models),
        "root": str(root),
        "python": a.python,
        "seconds": round(time.perf_counter() - start, 1),
        "cases": results,
    }
    (root / "corpus.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{len(results)} invocations in {info['seconds']} s -> {root}")
    return 0


# ---------------------------------------------------------------------------------------------- normalisation
def norm_text(text: str, meta: dict, ignore_loggers: bool = False) -> str:
    """Paths of the tree and checkout as placeholders; clock times, durations, rates and progress bars neutral."""
    for path, mark in ((meta["root"], "<OUT>"), (meta["checkout"], "<CHECKOUT>")):
        text = text.replace(path, mark)
    text = re.sub(r'<td class="num">[\d.]+</td>(<td>(?:(?!<td).)*</td></tr>)', r'<td class="num"><DUR></td>\1', text)
    lines = []
    for line in re.split(r"[\r\n]", text):
        if re.search(r"\d+%\|", line) or not line.strip():
            continue  # progress bars (how many of their states get drawn depends on timing) and blank lines
        line = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d([.,]\d+)?(Z|[+-]\d\d:?\d\d)?", "<TS>", line)
        line = re.sub(r"\b\d\d:\d\d:\d\d(,\d+)?\b", "<HH:MM:SS>", line)
        line = re.sub(r"\b\d+(\.\d+)?(e-?\d+)? ?(s|ms|sec|seconds|min)\b", "<DUR>", line)
        line = re.sub(r"\b\d+(\.\d+)? ?[A-Za-z]+/s\b", "<RATE>", line)
        if ignore_loggers:
            line = re.sub(r"^(<HH:MM:SS> )?(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+:", r"\1\2 <logger>:", line)
        lines.append(line)
    return "\n".join(lines)


def norm_json(value, meta: dict):
    """Drop :data:`VOLATILE_KEYS` (and a DICOM SEG's checksum: new UIDs every run); paths as placeholders."""
    if isinstance(value, dict):
        seg = str(value.get("output", "")).endswith(".dcm")
        return {
            k: norm_json(v, meta) for k, v in value.items() if k not in VOLATILE_KEYS and not (seg and k == "sha256")
        }
    if isinstance(value, list):
        return [norm_json(v, meta) for v in value]
    if isinstance(value, str):
        return norm_text(value, meta)
    return value


# ---------------------------------------------------------------------------------------------- comparison
def _arrays(a: np.ndarray, b: np.ndarray, what: str = "voxels") -> str | None:
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    differ = int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b)))
    return f"{differ} of {a.size} {what} differ" if differ else None


def cmp_nifti(a: Path, b: Path, **_) -> str | None:
    import nibabel as nib

    x, y = nib.load(str(a)), nib.load(str(b))
    if x.get_data_dtype() != y.get_data_dtype():
        return f"stored dtype {x.get_data_dtype()} != {y.get_data_dtype()}"
    if not np.array_equal(x.affine, y.affine):
        return f"affine differs:\n{x.affine}\n!=\n{y.affine}"
    problem = _arrays(np.asanyarray(x.dataobj), np.asanyarray(y.dataobj))
    if problem:
        return problem
    hx, hy = x.header, y.header
    keys = [k for k in hx.keys() if np.asarray(hx[k]).tobytes() != np.asarray(hy[k]).tobytes()]
    return f"header fields differ: {', '.join(keys)}" if keys else None


def cmp_itk(a: Path, b: Path, **_) -> str | None:
    import SimpleITK as sitk

    x, y = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    for what in (
        "GetPixelIDTypeAsString",
        "GetNumberOfComponentsPerPixel",
        "GetSize",
        "GetSpacing",
        "GetOrigin",
        "GetDirection",
    ):
        if getattr(x, what)() != getattr(y, what)():
            return f"{what[3:]} {getattr(x, what)()} != {getattr(y, what)()}"
    mx = {k: x.GetMetaData(k) for k in x.GetMetaDataKeys()}
    my = {k: y.GetMetaData(k) for k in y.GetMetaDataKeys()}
    if mx != my:
        return f"metadata differs: {sorted(k for k in mx.keys() | my.keys() if mx.get(k) != my.get(k))}"
    return _arrays(sitk.GetArrayViewFromImage(x), sitk.GetArrayViewFromImage(y))


def cmp_pil(a: Path, b: Path, **_) -> str | None:
    from PIL import Image, ImageSequence

    with Image.open(a) as x, Image.open(b) as y:
        if (x.format, x.mode, x.size, getattr(x, "n_frames", 1)) != (
            y.format,
            y.mode,
            y.size,
            getattr(y, "n_frames", 1),
        ):
            return f"{x.format} {x.mode} {x.size} != {y.format} {y.mode} {y.size} (or page count)"
        tags = [dict(getattr(im, "tag_v2", {})) for im in (x, y)]
        if tags[0] != tags[1]:
            return "TIFF tags differ: "
            f"{sorted(k for k in tags[0].keys() | tags[1].keys() if tags[0].get(k) != tags[1].get(k))}"
        for page, (fx, fy) in enumerate(zip(ImageSequence.Iterator(x), ImageSequence.Iterator(y), strict=True)):
            problem = _arrays(np.asarray(fx), np.asarray(fy), "pixels")
            if problem:
                return f"page {page}: {problem}"
    return None


def _dicom_diff(x, y, where: str = "") -> str | None:
    keys = {e.tag for ds in (x, y) for e in ds if e.keyword not in VOLATILE_DICOM and e.VR not in DICOM_TIME_VRS}
    for tag in sorted(keys):
        ex, ey = x.get(tag), y.get(tag)
        name = f"{where}{(ex or ey).keyword or tag}"
        if ex is None or ey is None:
            return f"{name} present on one side only"
        if ex.VR == "SQ":
            if len(ex.value) != len(ey.value):
                return f"{name}: {len(ex.value)} != {len(ey.value)} items"
            for k, (ix, iy) in enumerate(zip(ex.value, ey.value, strict=True)):
                problem = _dicom_diff(ix, iy, f"{name}[{k}].")
                if problem:
                    return problem
        elif ex.VR != ey.VR or ex.value != ey.value:
            shown = f"{len(ex.value)} bytes" if isinstance(ex.value, bytes) else repr(ex.value)[:80]
            return (
                f"{name} differs ({shown} vs {len(ey.value) if isinstance(ey.value, bytes) else repr(ey.value)[:80]})"
            )
    return None


def cmp_dicom(a: Path, b: Path, **_) -> str | None:
    import pydicom

    x, y = pydicom.dcmread(str(a), force=True), pydicom.dcmread(str(b), force=True)
    return _dicom_diff(x.file_meta, y.file_meta, "meta.") or _dicom_diff(x, y)


def cmp_json(a: Path, b: Path, ma: dict, mb: dict, **_) -> str | None:
    x, y = norm_json(json.loads(a.read_text()), ma), norm_json(json.loads(b.read_text()), mb)
    return None if x == y else f"differs at {_first_json_diff(x, y)}"


def _first_json_diff(x, y, where: str = "$") -> str:
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(x.keys() | y.keys(), key=str):
            if x.get(k, ...) != y.get(k, ...):
                return _first_json_diff(x.get(k, "<absent>"), y.get(k, "<absent>"), f"{where}.{k}")
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for k, (i, j) in enumerate(zip(x, y, strict=True)):
            if i != j:
                return _first_json_diff(i, j, f"{where}[{k}]")
    return f"{where}: {json.dumps(x)[:100]} != {json.dumps(y)[:100]}"


def cmp_csv(a: Path, b: Path, ma: dict, mb: dict, **_) -> str | None:
    if a.read_bytes() == b.read_bytes():
        return None
    tables = []
    for path, meta in ((a, ma), (b, mb)):
        rows = list(csv.reader(io.StringIO(norm_text(path.read_text(), meta))))
        keep = [k for k, name in enumerate(rows[0] if rows else []) if not TIME_COLUMN.search(name.strip().lower())]
        tables.append([[row[k] for k in keep if k < len(row)] for row in rows])
    if tables[0] == tables[1]:
        return None
    first = next((k for k, (r, s) in enumerate(zip(*tables)) if r != s), min(map(len, tables)))
    return f"rows differ (time columns ignored), first at line {first + 1}"


def cmp_text(a: Path, b: Path, ma: dict, mb: dict, loggers: bool = False) -> str | None:
    x = norm_text(a.read_text(errors="replace"), ma, loggers).splitlines()
    y = norm_text(b.read_text(errors="replace"), mb, loggers).splitlines()
    if x == y:
        return None
    k = next((k for k, (i, j) in enumerate(zip(x, y)) if i != j), min(len(x), len(y)))
    return f"line {k + 1}: {(x[k] if k < len(x) else '<end>')[:150]!r} != {(y[k] if k < len(y) else '<end>')[:150]!r}"


def comparator(path: Path) -> Callable[..., str | None]:
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        return cmp_nifti
    if name.endswith(MASK_SUFFIXES):
        return cmp_itk
    if name.endswith((".png", ".tif", ".tiff", ".jpg", ".jpeg")):
        return cmp_pil
    if name.endswith(".dcm"):
        return cmp_dicom
    if name.endswith(".json"):
        return cmp_json
    if name.endswith(".csv"):
        return cmp_csv
    if name.endswith((".txt", ".log", ".html", ".md")) and name != "rc.txt":
        return cmp_text
    return lambda a, b, **_: None if a.read_bytes() == b.read_bytes() else "bytes differ"


def cmd_compare(a: argparse.Namespace) -> int:
    roots = [a.a.resolve(), a.b.resolve()]
    metas = [json.loads((r / "corpus.json").read_text()) for r in roots]
    files = [{p.relative_to(r).as_posix() for p in r.rglob("*") if p.is_file()} - {"corpus.json"} for r in roots]
    compared = differ = 0
    for rel in sorted(files[0] | files[1]):
        compared += 1
        if rel not in files[0] or rel not in files[1]:
            problem = f"only in {roots[0] if rel in files[0] else roots[1]}"
        else:
            x, y = roots[0] / rel, roots[1] / rel
            try:
                problem = comparator(x)(x, y, ma=metas[0], mb=metas[1], loggers=a.ignore_logger_names)
            except Exception as err:  # an unreadable file on one side is a difference, not a crash
                problem = f"could not compare: {type(err).__name__}: {err}"
        if problem:
            differ += 1
            print(f"{rel}: {problem}")
    print(f"{compared} files compared, {differ} differ")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("models", "run"):
        p = sub.add_parser(name)
        p.add_argument("--checkout", required=True, type=Path, help="repository root whose medseg_monai runs")
        p.add_argument("--out", required=True, type=Path)
        p.add_argument("--python", default=sys.executable, help="interpreter of the CLI (default: this one)")
        p.add_argument("--threads", type=int, default=2, help="OMP/MKL/torch threads")
    run = sub.choices["run"]
    run.add_argument("--models", required=True, type=Path, help="the folder 'models' wrote")
    run.add_argument("--only", nargs="+", help="run only these cases")
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument(
        "--ignore-logger-names", action="store_true", help="log lines' logger names (module paths) as <logger>"
    )
    args = parser.parse_args(argv)
    return {"models": cmd_models, "run": cmd_run, "compare": cmd_compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
