"""A corpus of bad (and odd but valid) inputs for the ``medseg`` command, one :class:`Case` per problem.

Each case's builder writes its files under a :class:`Workspace` and returns the command line; the case
says what must happen: the exit status, a regex the one error line must match (the ``medseg CMD: error:``
line on stderr, or the ``FAILED`` line of a batch), a warning expected in the log, and the outputs that must
be written. Append cases with :func:`register` or the :func:`case` decorator.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg_monai.errors import EXIT_BAD_INPUT as EXIT_BAD
from medseg_monai.errors import EXIT_FAILED_CASES as EXIT_FAILED
from medseg_monai.errors import EXIT_OK
from medseg_monai.io.dicom import preserved_locale

__all__ = ["CASES", "Case", "Workspace", "case", "register"]


#: volume of every good 3D input, (X, Y, Z)
VOLUME_SHAPE = (20, 20, 12)
#: voxel size of every good volume (that of the trained 3D run's data), mm
SPACING = (1.2, 1.2, 2.5)
#: every good raster input, (H, W)
RASTER_SHAPE = (40, 40)
#: bytes of a small valid PNG, used as the "wrong magic" content of other formats
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU\x00\x00\x00\nIDAT"
    b"x\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclasses.dataclass
class Workspace:
    """Where one case writes its files: ``inputs`` (images), ``output`` (the command's output folder),
    ``runs`` (the shared trained run folders by spatial dims, never modified)."""

    root: Path
    runs: dict[int, Path]

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def output(self) -> Path:
        return self.root / "out"

    # ------------------------------------------------------------------ files
    def volume(
        self,
        name: str,
        folder: Path | None = None,
        *,
        seed: int = 0,
        shape: Sequence[int] = VOLUME_SHAPE,
        spacing: Sequence[float] = SPACING,
        compress: bool = False,
    ) -> Path:
        """A valid volume ``name`` (format by suffix; a name without suffix is a DICOM series folder)."""
        folder = folder or self.inputs
        folder.mkdir(parents=True, exist_ok=True)
        array = _blob(shape, seed)
        path = folder / name
        lower = name.lower()
        if lower.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            nib.Nifti1Image(array, np.diag([*spacing, 1.0])).to_filename(str(path))
        elif lower.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
            import SimpleITK as sitk

            sitk.WriteImage(_sitk_volume(array, spacing), str(path), useCompression=compress)
        else:
            write_dicom_series(path, array)
        return path

    def raster(
        self, name: str, folder: Path | None = None, *, seed: int = 0, shape: Sequence[int] = RASTER_SHAPE
    ) -> Path:
        """A valid 8-bit gray raster image ``name`` (PNG, TIF or JPG by suffix)."""
        from PIL import Image

        folder = folder or self.inputs
        folder.mkdir(parents=True, exist_ok=True)
        array = (_blob(shape, seed) * 255).astype(np.uint8)
        path = folder / name
        Image.fromarray(array).save(path)
        return path

    def copy_run(self, dims: int, name: str = "model") -> Path:
        """A copy of the trained run folder (``config.json`` + ``checkpoints/``) to break."""
        target = self.root / name
        shutil.copytree(self.runs[dims], target, ignore=shutil.ignore_patterns("*.png", "*.csv"))
        return target

    # ------------------------------------------------------------------ command lines
    def predict(
        self,
        dims: int,
        *extra: str,
        model: Path | None = None,
        inputs: Path | str | None = None,
        output: Path | None = None,
    ) -> list[str]:
        """``medseg -q predict`` with the trained run of ``dims`` on ``inputs`` (default: the inputs folder)."""
        return [
            "-q",
            "predict",
            "--model",
            str(model or self.runs[dims]),
            "--input",
            str(inputs or self.inputs),
            "--output",
            str(output or self.output),
            *extra,
        ]

    def train(self, data: Path | str, *extra: str) -> list[str]:
        """``medseg -q train`` of a tiny 2D network on ``data`` for one epoch."""
        return [
            "-q",
            "train",
            "--data",
            str(data),
            "--out",
            str(self.output),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--patch-size",
            "16",
            "16",
            "--set",
            'model.options={"channels": [4, 8], "strides": [2]}',
            *extra,
        ]

    def evaluate(self, pred: Path, truth: Path, *extra: str) -> list[str]:
        return ["-q", "evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(self.output), *extra]

    def bundles(self) -> Path:
        """A copy of the repository's ``unet2d_png`` bundle under ``root/bundles`` (runs never touch the repository)."""
        source = Path(__file__).resolve().parents[1] / "bundles" / "unet2d_png"
        target = self.root / "bundles" / "unet2d_png"
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("models", "runs", "predictions"))
        return target.parent


Builder = Callable[[Workspace], list[str]]
Patch = Callable[[pytest.MonkeyPatch, Workspace], None]
Check = Callable[[Workspace], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad (or odd) input and what ``medseg`` must do with it.

    ``message`` is a regex the one error line must match (the stderr line for status 2/3, the ``FAILED``
    line for status 1); ``warning`` a regex one logged warning must match; ``written`` paths (relative to
    the workspace root) that must exist afterwards; ``patch`` changes the environment (a full disk);
    ``check`` adds assertions of its own.
    """

    id: str
    command: str
    build: Builder
    status: int
    message: str | None = None
    warning: str | None = None
    written: tuple[str, ...] = ()
    patch: Patch | None = None
    check: Check | None = None
    marks: tuple[Any, ...] = ()

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=self.marks)


CASES: list[Case] = []


def register(*cases: Case) -> None:
    """Add cases to :data:`CASES`; ids must be unique."""
    known = {c.id for c in CASES}
    for item in cases:
        if item.id in known:
            raise ValueError(f"duplicate case id {item.id!r}")
        known.add(item.id)
        CASES.append(item)


def case(id: str, command: str, status: int, message: str | None = None, **fields: Any) -> Callable[[Builder], Builder]:
    """Decorator registering the builder it decorates as a :class:`Case`."""

    def decorator(build: Builder) -> Builder:
        register(Case(id, command, build, status, message, **fields))
        return build

    return decorator


def allof(*patterns: str) -> str:
    """A regex matching a line that holds every one of ``patterns``, in any order."""
    return "^" + "".join(f"(?=.*(?:{p}))" for p in patterns)


def xfail(reason: str) -> tuple[Any, ...]:
    return (pytest.mark.xfail(strict=True, reason=reason),)


# ---------------------------------------------------------------------------------------------- file helpers
def _blob(shape: Sequence[int], seed: int) -> np.ndarray:
    """A bright ellipsoid on a dim noisy background, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    inside = sum(g**2 for g in grids) < 0.4
    return (0.2 + 0.6 * inside + 0.05 * rng.random(tuple(shape))).astype(np.float32)


def _sitk_volume(array: np.ndarray, spacing: Sequence[float] = SPACING):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.T.copy())
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def write_dicom_series(folder: Path, array: np.ndarray) -> None:
    with preserved_locale():  # GDCM's writer switches the process locale to C
        _write_dicom_series(folder, array)


def _write_dicom_series(folder: Path, array: np.ndarray) -> None:
    """One CT series, a slice per file (``slice_000.dcm`` ...), written with SimpleITK."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.Cast(_sitk_volume(array * 1000.0), sitk.sitkInt16)
    uid = "1.2.826.0.1.3680043.2.1125.77"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[2]):
        plane = volume[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0020|000d": uid + ".0",
            "0020|000e": uid,
            "0008|0018": f"{uid}.{k + 1}",
            "0020|0052": uid + ".1",
            "0020|0013": str(k + 1),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": "2.5",
            "0020|0032": "\\".join(f"{v:.6f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))),
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(plane)


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])


def random_bytes(size: int = 4096, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def detached_data_file(header: Path) -> Path:
    """The data file a ``.mhd`` (``ElementDataFile``) or ``.nhdr`` (``data file``) header names."""
    text = header.read_text(errors="replace")
    found = re.search(r"^(?:ElementDataFile\s*=|data ?file:)\s*(\S+)\s*$", text, re.MULTILINE | re.IGNORECASE)
    assert found, f"{header}: no data file line"
    return header.parent / found.group(1)


# ---------------------------------------------------------------------------------------------- predict: broken files
#: format -> (suffix, spatial dims of the model, mask suffix, writer of a valid file)
_FORMATS: dict[str, tuple[str, int, str]] = {
    "nii": (".nii", 3, ".nii.gz"),
    "niigz": (".nii.gz", 3, ".nii.gz"),
    "mha": (".mha", 3, ".mha"),
    "nrrd": (".nrrd", 3, ".nrrd"),
    "png": (".png", 2, ".png"),
    "tif": (".tif", 2, ".tif"),
    "jpg": (".jpg", 2, ".png"),
    "dicom": ("", 3, ".dcm"),  # a DICOM series' mask is a DICOM SEG
}


def _valid(ws: Workspace, fmt: str, name: str) -> Path:
    suffix, dims, _ = _FORMATS[fmt]
    return ws.raster(name + suffix) if dims == 2 else ws.volume(name + suffix)


def _broken_file(fmt: str, kind: str) -> Builder:
    """A folder holding a valid ``good`` and a broken ``bad`` file of ``fmt``: zero bytes, truncated, or another
    format's bytes."""
    suffix, dims, _ = _FORMATS[fmt]

    def build(ws: Workspace) -> list[str]:
        _valid(ws, fmt, "good")
        if fmt == "dicom":  # a series folder whose one file is broken
            if kind == "truncated":
                series = ws.volume("bad")
                truncate(series / "slice_001.dcm", 0.1)
            else:
                (ws.inputs / "bad").mkdir()
                (ws.inputs / "bad" / "slice_000.dcm").write_bytes(b"" if kind == "zero" else PNG_BYTES)
            return ws.predict(dims)
        bad = ws.inputs / f"bad{suffix}"
        if kind == "zero":
            bad.write_bytes(b"")
        elif kind == "truncated":
            shutil.copy(_valid(ws, fmt, "full"), bad)
            (ws.inputs / f"full{suffix}").unlink()
            truncate(bad)
        elif kind == "png-bytes":
            bad.write_bytes(PNG_BYTES)
        else:
            bad.write_bytes(random_bytes())
        return ws.predict(dims)

    return build


_READ_PROBLEM = (
    r"(cannot read image|empty file \(0 bytes\)|not a MetaImage header|unreadable DICOM slice|truncated"
    r"|a DICOM file that is not a slice|no DICOM series)"
)
#: (format, kind) -> the problem the message must state, where more specific than "cannot read image"
_PROBLEM = {("mha", "truncated"): r"(?!.*No such file).*(truncated|not read completely|holds \d)"}
_MARKS: dict[tuple[str, str], tuple[Any, ...]] = {}

for _fmt, (_suffix, _dims, _mask_suffix) in _FORMATS.items():
    _kinds = ["zero", "truncated", "random" if _dims == 2 else "png-bytes"] + (["random"] if _fmt == "niigz" else [])
    for _kind in _kinds:
        _bad = re.escape(f"bad{_suffix}") if _fmt != "dicom" else r"bad(/slice_00\d\.dcm)?"
        register(
            Case(
                f"predict-{_fmt}-{_kind}",
                "predict",
                _broken_file(_fmt, _kind),
                EXIT_FAILED,
                message=rf"^FAILED .*{_bad}: {_READ_PROBLEM}" + _PROBLEM.get((_fmt, _kind), ""),
                written=(f"out/good{_mask_suffix}",),
                marks=_MARKS.get((_fmt, _kind), ()),
            )
        )


def _missing_data_file(suffix: str) -> Builder:
    def build(ws: Workspace) -> list[str]:
        ws.volume(f"good{suffix}")
        bad = ws.volume(f"bad{suffix}")
        detached_data_file(bad).unlink()
        return ws.predict(3)

    return build


register(
    Case(
        "predict-mhd-missing-raw",
        "predict",
        _missing_data_file(".mhd"),
        EXIT_FAILED,
        message=allof(r"^FAILED .*bad\.mhd: ", r"bad\.raw.*missing"),
        written=("out/good.mha",),
    ),
    Case(
        "predict-nhdr-missing-data-file",
        "predict",
        _missing_data_file(".nhdr"),
        EXIT_FAILED,
        message=allof(r"^FAILED .*bad\.nhdr: cannot read image", r"bad\.raw"),
        written=("out/good.nrrd",),
    ),
)


def _zero_pixdim(path: Path) -> Path:
    """``path`` (a NIfTI-1 file) with its second voxel size 0 in the header, as some converters write it (nibabel
    reads it back as 1 mm with only a warning)."""
    import gzip

    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[84:88] = np.float32(0.0).tobytes()  # pixdim[2]
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


@case(
    "predict-nifti-zero-voxel-size",
    "predict",
    EXIT_FAILED,
    message=r"^FAILED .*flat\.nii\.gz: voxel spacing \(pixdim\) \[[\d.]+, 0\.0, [\d.]+\] must be positive and finite",
    written=("out/good.nii.gz",),
)
def _predict_zero_pixdim(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    _zero_pixdim(ws.volume("flat.nii.gz", seed=1))
    return ws.predict(3)


# ---------------------------------------------------------------------------------------------- predict: odd but valid
@case("predict-unicode-and-spaces-in-paths", "predict", EXIT_OK, written=("out dir ü/scan ü 日本 1.nii.gz",))
def _unicode_paths(ws: Workspace) -> list[str]:
    folder = ws.root / "scans ü 日本"
    ws.volume("scan ü 日本 1.nii.gz", folder)
    return ws.predict(3, inputs=folder, output=ws.root / "out dir ü")


@case("predict-png-bytes-named-jpg", "predict", EXIT_OK, written=("out/scan.png",))
def _png_named_jpg(ws: Workspace) -> list[str]:
    """A PNG saved as ``.jpg``: the content decides, the mask is a PNG."""
    shutil.move(ws.raster("scan.png"), ws.inputs / "scan.jpg")
    return ws.predict(2)


@case("predict-constant-image", "predict", EXIT_OK, warning=r"flat\.png.*constant", written=("out/flat.png",))
def _constant_image(ws: Workspace) -> list[str]:
    from PIL import Image

    ws.inputs.mkdir(parents=True)
    Image.fromarray(np.full(RASTER_SHAPE, 90, np.uint8)).save(ws.inputs / "flat.png")
    return ws.predict(2)


@case("predict-one-voxel-volume", "predict", EXIT_OK, warning=r"dot\.nii\.gz.*constant", written=("out/dot.nii.gz",))
def _one_voxel(ws: Workspace) -> list[str]:
    ws.volume("dot.nii.gz", shape=(1, 1, 1), spacing=(1.0, 1.0, 1.0))
    return ws.predict(3)


@case("predict-single-slice-volume", "predict", EXIT_OK, written=("out/slab.nii.gz",))
def _single_slice(ws: Workspace) -> list[str]:
    ws.volume("slab.nii.gz", shape=(20, 20, 1))
    return ws.predict(3)


# ---------------------------------------------------------------------------------------------- predict: outputs
def _read_only_output(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    ws.output.mkdir()
    ws.output.chmod(0o555)
    return ws.predict(3)


register(
    Case(
        "predict-read-only-output-folder",
        "predict",
        _read_only_output,
        EXIT_BAD,
        message=allof(r"^medseg predict: error: .*out/", r"cannot write \(Permission denied\)"),
        marks=(
            pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions"),
        ),
    )
)


def _deny_writes(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    """Writes into the output folder fail as in a read-only folder (for runs as root, which ignore the mode)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args: Any, dir: Any = None, **kwargs: Any):
        if dir is not None and Path(dir).resolve() == ws.output.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@case(
    "predict-unwritable-output-folder",
    "predict",
    EXIT_BAD,
    allof(r"^medseg predict: error: .*out/", r"cannot write \(Permission denied\)"),
    patch=_deny_writes,
)
def _unwritable_output(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    ws.output.mkdir()
    return ws.predict(3)


@case(
    "predict-output-is-a-file",
    "predict",
    EXIT_BAD,
    allof(r"^medseg predict: error: ", r"/out\b", r"not a (directory|folder)|is a file"),
)
def _output_is_file(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    ws.output.write_text("not a folder\n")
    return ws.predict(3)


def _bad_beside_good(suffix: str) -> Builder:
    """Two valid volumes, ``bad`` and ``good``; the case's patch makes ``bad`` fail."""

    def build(ws: Workspace) -> list[str]:
        ws.volume(f"bad{suffix}")
        ws.volume(f"good{suffix}", seed=1)
        return ws.predict(3)

    return build


def _disk_fills(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    """The mask writer of ``bad.nii.gz`` writes part of its temporary file, then the disk is full."""
    from medseg_monai.io import writers

    real = writers.MASK_WRITERS["nifti"]

    def writer(mask: np.ndarray, source: Path, geometry: Any, tmp: Path) -> None:
        if source.name.startswith("bad"):
            tmp.write_bytes(b"\x00" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(mask, source, geometry, tmp)

    monkeypatch.setitem(writers.MASK_WRITERS, "nifti", writer)


register(
    Case(
        "predict-disk-full-mid-write",
        "predict",
        _bad_beside_good(".nii.gz"),
        EXIT_FAILED,
        allof(r"^FAILED .*in/bad\.nii\.gz", r"out/bad\.nii\.gz: cannot write \(No space left on device\)"),
        written=("out/good.nii.gz",),
        patch=_disk_fills,
    )
)


def _disk_fills_itk(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    """SimpleITK writes part of ``bad.mha``'s temporary file, then reports the full disk as a RuntimeError."""
    import SimpleITK as sitk

    real = sitk.WriteImage

    def write(image: Any, name: str, *args: Any, **kwargs: Any) -> None:
        if Path(name).name.startswith(".bad"):
            Path(name).write_bytes(b"ObjectType = Image\n")
            raise RuntimeError(
                "Exception thrown in SimpleITK ImageFileWriter_Execute: itkMetaImageIO.cxx:1012:\n"
                "ITK ERROR: MetaImageIO(0x1): File cannot be written: No space left on device"
            )
        real(image, name, *args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", write)


register(
    Case(
        "predict-disk-full-mid-write-simpleitk",
        "predict",
        _bad_beside_good(".mha"),
        EXIT_FAILED,
        allof(r"^FAILED .*in/bad\.mha", r"out/bad\.mha: cannot write the mask \(.*No space left on device\)"),
        written=("out/good.mha",),
        patch=_disk_fills_itk,
    )
)


def _manifest_disk_full(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    """The disk is full when the batch writes its first file, the manifest: nothing can run."""
    real = Path.write_text

    def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if self.name.startswith(".predict_manifest"):
            real(self, data[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


@case(
    "predict-disk-full-before-any-case",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*out/predict_manifest\.json: cannot write \(No space left on device\)",
    patch=_manifest_disk_full,
)
def _disk_full_manifest(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    return ws.predict(3)


# ---------------------------------------------------------------------------------------------- predict: models
@case("predict-missing-checkpoint", "predict", EXIT_BAD, r"^medseg predict: error: .*nowhere\.pt: checkpoint not found")
def _missing_checkpoint(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    return ws.predict(3, "--checkpoint", str(ws.root / "nowhere.pt"))


@case(
    "predict-missing-model-folder",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: --model .*no_model: no such run folder, checkpoint or exported model",
)
def _missing_model(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    return ws.predict(3, model=ws.root / "no_model")


def _broken_checkpoint(kind: str) -> Builder:
    def build(ws: Workspace) -> list[str]:
        ws.volume("scan.nii.gz")
        run = ws.copy_run(3)
        best = run / "checkpoints" / "best.pt"
        if kind == "random":
            best.write_bytes(random_bytes(20000))
        elif kind == "truncated":
            truncate(best)
        else:
            best.write_bytes(b"")
        return ws.predict(3, model=run)

    return build


for _kind in ("random", "truncated", "zero"):
    register(
        Case(
            f"predict-checkpoint-{_kind}",
            "predict",
            _broken_checkpoint(_kind),
            EXIT_BAD,
            r"^medseg predict: error: .*best\.pt: not a readable checkpoint",
        )
    )


@case(
    "predict-checkpoint-of-another-network",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*best\.pt: weights do not fit network",
)
def _foreign_checkpoint(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    run = ws.copy_run(3)
    shutil.copy(ws.runs[2] / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
    return ws.predict(3, model=run)


class _Payload:
    """Unpickling this creates the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _marker(ws: Workspace) -> Path:
    return ws.root / "pwned.marker"


def _no_marker(ws: Workspace) -> None:
    assert not _marker(ws).exists(), "loading the checkpoint ran its pickled code"


def _pickle_checkpoint(kind: str) -> Builder:
    def build(ws: Workspace) -> list[str]:
        import torch

        ws.volume("scan.nii.gz")
        run = ws.copy_run(3)
        best = run / "checkpoints" / "best.pt"
        if kind == "torch":
            payload = torch.load(best, weights_only=True)
            torch.save({**payload, "network": _Payload(_marker(ws))}, best)
        else:
            best.write_bytes(pickle.dumps({"network": _Payload(_marker(ws))}))
        return ws.predict(3, model=run)

    return build


for _kind in ("torch", "plain"):
    register(
        Case(
            f"predict-checkpoint-pickle-payload-{_kind}",
            "predict",
            _pickle_checkpoint(_kind),
            EXIT_BAD,
            r"^medseg predict: error: .*best\.pt: not a readable checkpoint",
            check=_no_marker,
        )
    )


def _edited_config(edit: Callable[[Path], None]) -> Builder:
    def build(ws: Workspace) -> list[str]:
        ws.volume("scan.nii.gz")
        run = ws.copy_run(3)
        edit(run / "config.json")
        return ws.predict(3, model=run)

    return build


def _future_version(path: Path) -> None:
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "version": 99}))


def _unknown_field(path: Path) -> None:
    config = json.loads(path.read_text())
    config["model"]["from_the_future"] = 1
    path.write_text(json.dumps(config))


register(
    Case(
        "predict-config-future-version",
        "predict",
        _edited_config(_future_version),
        EXIT_BAD,
        r"^medseg predict: error: .*config\.json: config version 99 is newer",
    ),
    Case(
        "predict-config-malformed-json",
        "predict",
        _edited_config(lambda p: p.write_text('{"data": {"spatial_dims": 3,')),
        EXIT_BAD,
        r"^medseg predict: error: .*config\.json: not valid JSON",
    ),
    Case(
        "predict-config-unknown-field",
        "predict",
        _edited_config(_unknown_field),
        EXIT_BAD,
        r"^medseg predict: error: .*config\.json: .*from_the_future",
    ),
)


# ---------------------------------------------------------------------------------------------- predict: input lists
@case(
    "predict-empty-input-folder", "predict", EXIT_BAD, r"^medseg predict: error: .*in: no images or DICOM series found"
)
def _empty_folder(ws: Workspace) -> list[str]:
    ws.inputs.mkdir()
    (ws.inputs / "notes.txt.bak").write_text("no images here\n")
    return ws.predict(3)


@case(
    "predict-missing-input",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: --input .*nowhere\.nii\.gz: no such file or folder",
)
def _missing_input(ws: Workspace) -> list[str]:
    return ws.predict(3, inputs=ws.root / "nowhere.nii.gz")


@case(
    "predict-csv-names-a-missing-file",
    "predict",
    EXIT_BAD,
    allof(r"^medseg predict: error: ", r"do not exist", r"in/missing\.nii\.gz \(listed in .*in/list\.csv\)"),
)
def _csv_missing(ws: Workspace) -> list[str]:
    ws.volume("a.nii.gz")
    listing = ws.inputs / "list.csv"
    listing.write_text("image,subject\na.nii.gz,1\nmissing.nii.gz,2\n")
    return ws.predict(3, inputs=listing)


@case(
    "predict-csv-without-image-column",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*list\.csv: CSV needs a column named 'image'",
)
def _csv_no_column(ws: Workspace) -> list[str]:
    ws.volume("a.nii.gz")
    listing = ws.inputs / "list.csv"
    listing.write_text("file,subject\na.nii.gz,1\n")
    return ws.predict(3, inputs=listing)


@case(
    "predict-same-case-name-two-suffixes",
    "predict",
    EXIT_BAD,
    allof(r"^medseg predict: error: ", r"in/a\.mha", r"in/a\.nii\.gz", r"name clash"),
)
def _name_clash(ws: Workspace) -> list[str]:
    ws.volume("a.nii.gz")
    ws.volume("a.mha", seed=1)
    return ws.predict(3, "--output-format", "nifti")


@case(
    "predict-input-folder-is-output-folder",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*in: output folder is the input folder",
)
def _same_folder(ws: Workspace) -> list[str]:
    ws.volume("a.nii.gz")
    return ws.predict(3, output=ws.inputs)


# ---------------------------------------------------------------------------------------------- train
def _pairs(ws: Workspace, folder: Path, count: int = 3) -> None:
    for k in range(count):
        ws.raster(f"c{k}.png", folder, seed=k)
        _mask(folder / f"c{k}_mask.png", RASTER_SHAPE)


def _mask(path: Path, shape: Sequence[int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(tuple(shape), np.uint8)
    mask[shape[0] // 4 : shape[0] // 2, shape[1] // 4 : shape[1] // 2] = 1
    Image.fromarray(mask).save(path)


@case("train-missing-data-folder", "train", EXIT_BAD, r"^medseg train: error: --data .*nowhere: no such folder or file")
def _train_missing(ws: Workspace) -> list[str]:
    return ws.train(ws.root / "nowhere")


@case(
    "train-images-without-masks", "train", EXIT_BAD, r"^medseg train: error: .*data: images/ has no masks/ or labels/"
)
def _train_no_masks(ws: Workspace) -> list[str]:
    for k in range(3):
        ws.raster(f"c{k}.png", ws.root / "data" / "images", seed=k)
    return ws.train(ws.root / "data")


@case(
    "train-mask-of-another-size",
    "train",
    EXIT_BAD,
    allof(r"^medseg train: error: ", r"image/mask mismatch", r"c1\.png is \(40, 40\)", r"c1_mask\.png is \(32, 48\)"),
)
def _train_mask_size(ws: Workspace) -> list[str]:
    data = ws.root / "data"
    _pairs(ws, data)
    _mask(data / "c1_mask.png", (32, 48))
    return ws.train(data)


@case("train-datalist-malformed-json", "train", EXIT_BAD, r"^medseg train: error: .*datalist\.json: not valid JSON")
def _train_bad_json(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    listing = ws.root / "data" / "datalist.json"
    listing.write_text('{"training": [{"image": "c0.png", "label": "c0_mask.png"},')
    return ws.train(listing)


@case(
    "train-datalist-names-a-missing-file",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*datalist\.json: 1 listed file\(s\) do not exist: .*c9_mask\.png",
)
def _train_missing_item(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    listing = ws.root / "data" / "datalist.json"
    items = [{"image": f"c{k}.png", "label": f"c{k}_mask.png"} for k in range(3)]
    items.append({"image": "c0.png", "label": "c9_mask.png", "name": "c9"})
    listing.write_text(json.dumps({"training": items}))
    return ws.train(listing)


@case(
    "train-datalist-without-training-list",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*datalist\.json: no 'training' list",
)
def _train_no_list(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    listing = ws.root / "data" / "datalist.json"
    listing.write_text(json.dumps({"validation": []}))
    return ws.train(listing)


# ---------------------------------------------------------------------------------------------- evaluate
def _truth(ws: Workspace, names: Sequence[str], shape: Sequence[int] = VOLUME_SHAPE) -> Path:
    import nibabel as nib

    folder = ws.root / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        mask = (_blob(shape, 0) > 0.5).astype(np.uint8)
        nib.Nifti1Image(mask, np.diag([*SPACING, 1.0])).to_filename(str(folder / f"{name}.nii.gz"))
    return folder


def _predictions(ws: Workspace, names: Sequence[str], shape: Sequence[int] = VOLUME_SHAPE) -> Path:
    truth = _truth(ws, names, shape)
    pred = ws.root / "pred"
    pred.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(truth / f"{name}.nii.gz", pred / f"{name}.nii.gz")
    shutil.rmtree(truth)
    return pred


@case("evaluate-missing-predictions-folder", "evaluate", EXIT_BAD, r"^medseg evaluate: error: .*pred: folder not found")
def _eval_missing(ws: Workspace) -> list[str]:
    return ws.evaluate(ws.root / "pred", _truth(ws, ["a"]))


@case(
    "evaluate-no-prediction-matches-truth",
    "evaluate",
    EXIT_BAD,
    r"^medseg evaluate: error: .*pred: no prediction matches a mask in .*truth",
)
def _eval_no_match(ws: Workspace) -> list[str]:
    pred = _predictions(ws, ["x"])
    return ws.evaluate(pred, _truth(ws, ["a"]))


@case(
    "evaluate-prediction-of-another-shape",
    "evaluate",
    EXIT_FAILED,
    r"^FAILED .*a\.nii\.gz.*(shape|size)",
    written=("out/metrics_per_case.csv", "out/metrics_summary.json"),
)
def _eval_shape(ws: Workspace) -> list[str]:
    pred = _predictions(ws, ["a"], shape=(16, 16, 12))
    shutil.copy(_truth(ws, ["b"]) / "b.nii.gz", pred / "b.nii.gz")
    return ws.evaluate(pred, _truth(ws, ["a", "b"]))


@case(
    "evaluate-unreadable-prediction",
    "evaluate",
    EXIT_FAILED,
    r"^FAILED .*a\.nii\.gz: cannot read image",
    written=("out/metrics_per_case.csv",),
)
def _eval_unreadable(ws: Workspace) -> list[str]:
    pred = _predictions(ws, ["b"])
    (pred / "a.nii.gz").write_bytes(PNG_BYTES)
    return ws.evaluate(pred, _truth(ws, ["a", "b"]))


# ---------------------------------------------------------------------------------------------- bundle run
@case(
    "bundle-unknown-name",
    "bundle",
    EXIT_BAD,
    r"^medseg bundle: error: bundle 'no_such_bundle' not found.*available: unet2d_png",
)
def _bundle_unknown(ws: Workspace) -> list[str]:
    return ["-q", "bundle", "run", "no_such_bundle", "train", "--root", str(ws.bundles())]


@case("bundle-missing-dataset-dir", "bundle", EXIT_BAD, r"^medseg bundle: error: .*dataset_dir is required")
def _bundle_no_dataset(ws: Workspace) -> list[str]:
    return [
        "-q",
        "bundle",
        "run",
        "unet2d_png",
        "train",
        "--root",
        str(ws.bundles()),
        "--output_dir",
        str(ws.output),
        "--model_dir",
        str(ws.output / "models"),
    ]


@case("bundle-dataset-dir-does-not-exist", "bundle", EXIT_BAD, r"^medseg bundle: error: .*nowhere.*no such folder")
def _bundle_dataset_missing(ws: Workspace) -> list[str]:
    return [
        "-q",
        "bundle",
        "run",
        "unet2d_png",
        "train",
        "--root",
        str(ws.bundles()),
        "--dataset_dir",
        str(ws.root / "nowhere"),
        "--output_dir",
        str(ws.output),
        "--model_dir",
        str(ws.output / "models"),
    ]


@case(
    "bundle-override-names-no-config-id",
    "bundle",
    EXIT_BAD,
    r"^medseg bundle: error: .*override --epochz names no config id",
)
def _bundle_bad_override(ws: Workspace) -> list[str]:
    return [
        "-q",
        "bundle",
        "run",
        "unet2d_png",
        "train",
        "--root",
        str(ws.bundles()),
        "--dataset_dir",
        str(ws.root),
        "--epochz",
        "2",
        "--output_dir",
        str(ws.output),
    ]


@case(
    "bundle-unknown-config-name",
    "bundle",
    EXIT_BAD,
    r"^medseg bundle: error: .*trian\.json: config not found; available:",
)
def _bundle_bad_config(ws: Workspace) -> list[str]:
    return ["-q", "bundle", "run", "unet2d_png", "trian", "--root", str(ws.bundles())]


# ---------------------------------------------------------------------------------------------- odd images and masks
def _nifti(path: Path, array: np.ndarray, spacing: Sequence[float] = SPACING) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.Nifti1Image(array, np.diag([*spacing, 1.0])).to_filename(str(path))
    return path


def _spoiled(ws: Workspace) -> Path:
    array = _blob(VOLUME_SHAPE, 0)
    array[0, 0, 0] = np.nan
    ws.volume("good.nii.gz")
    return _nifti(ws.inputs / "bad.nii.gz", array)


def _nan_mask_matches_clean(ws: Workspace) -> None:
    import nibabel as nib

    spoiled = np.asarray(nib.load(str(ws.output / "bad.nii.gz")).dataobj)
    clean = np.asarray(nib.load(str(ws.output / "good.nii.gz")).dataobj)
    assert spoiled.any() and (spoiled == clean).mean() > 0.999, "one NaN voxel must not change the mask"


@case(
    "predict-one-nan-voxel",
    "predict",
    EXIT_OK,
    warning=r"bad\.nii\.gz: 1 NaN voxel\(s\) of [\d,]+ replaced",
    written=("out/bad.nii.gz", "out/good.nii.gz"),
    check=_nan_mask_matches_clean,
)
def _one_nan(ws: Workspace) -> list[str]:
    _spoiled(ws)  # bad.nii.gz is good.nii.gz with one NaN voxel
    return ws.predict(3)


@case(
    "predict-one-nan-voxel-strict",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*bad\.nii\.gz: 1 NaN voxel\(s\) \(without --strict",
    written=("out/good.nii.gz",),
)
def _one_nan_strict(ws: Workspace) -> list[str]:
    _spoiled(ws)
    return ws.predict(3, "--strict")


@case(
    "predict-4d-volume",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*bad\.nii\.gz: a 4D image of 3 volumes, but the model takes 1 channel\(s\); "
    r"choose one with --volume-index \(0\.\.2\)",
    written=("out/good.nii.gz",),
)
def _four_d(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    _nifti(ws.inputs / "bad.nii.gz", np.stack([_blob(VOLUME_SHAPE, k) for k in range(3)], axis=-1))
    return ws.predict(3)


@case(
    "predict-4d-volume-index",
    "predict",
    EXIT_OK,
    warning=r"dyn\.nii\.gz: 3 volumes, segmenting volume 1",
    written=("out/dyn.nii.gz",),
)
def _four_d_chosen(ws: Workspace) -> list[str]:
    _nifti(ws.inputs / "dyn.nii.gz", np.stack([_blob(VOLUME_SHAPE, k) for k in range(3)], axis=-1))
    return ws.predict(3, "--volume-index", "1")


@case(
    "predict-complex-volume",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*bad\.nii\.gz: complex-valued voxels \(complex64\)",
    written=("out/good.nii.gz",),
)
def _complex(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    blob = _blob(VOLUME_SHAPE, 0)
    _nifti(ws.inputs / "bad.nii.gz", (blob + 1j * blob).astype(np.complex64))
    return ws.predict(3)


@case(
    "predict-sheared-direction",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*bad\.nii\.gz: the direction axes are not orthonormal",
    written=("out/good.nii.gz",),
)
def _sheared(ws: Workspace) -> list[str]:
    import nibabel as nib

    ws.volume("good.nii.gz")
    affine = np.diag([*SPACING, 1.0])
    affine[0, 1] = 0.5
    nib.Nifti1Image(_blob(VOLUME_SHAPE, 0), affine).to_filename(str(ws.inputs / "bad.nii.gz"))
    return ws.predict(3)


@case(
    "predict-header-over-max-voxels",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*bad\.nii\.gz: header claims .* more than max_voxels 100",
    written=(),
)
def _too_big(ws: Workspace) -> list[str]:
    ws.volume("bad.nii.gz")
    return ws.predict(3, "--max-voxels", "100")


def _two_series(ws: Workspace) -> Path:
    folder = ws.inputs / "mixed"
    write_dicom_series(folder, _blob(VOLUME_SHAPE, 0))
    other = ws.root / "other"
    write_dicom_series(other, _blob((VOLUME_SHAPE[0], VOLUME_SHAPE[1], 3), 1))
    for path in sorted(other.iterdir()):  # a second series (another UID) in the same folder
        data = path.read_bytes().replace(b"1.2.826.0.1.3680043.2.1125.77", b"1.2.826.0.1.3680043.2.1125.78")
        (folder / f"b_{path.name}").write_bytes(data)
    shutil.rmtree(other)
    return folder


@case(
    "predict-dicom-folder-with-two-series",
    "predict",
    EXIT_OK,
    written=(
        "out/good.nii.gz",
        "out/mixed_1.2.826.0.1.3680043.2.1125.77.dcm",
        "out/mixed_1.2.826.0.1.3680043.2.1125.78.dcm",
    ),
)
def _dicom_two(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    _two_series(ws)
    return ws.predict(3)


@case(
    "predict-dicom-series-missing-slice",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*gap: missing slice\(s\): a gap of",
    written=("out/good.nii.gz",),
)
def _dicom_gap(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    ws.volume("gap")
    (ws.inputs / "gap" / "slice_003.dcm").unlink()
    return ws.predict(3)


def _label_pairs(ws: Workspace, mask_of: Callable[[int], np.ndarray], suffix: str = ".png") -> Path:
    from PIL import Image

    data = ws.root / "data"
    for k in range(3):
        ws.raster(f"c{k}.png", data, seed=k)
        mask = mask_of(k)
        if suffix == ".png":
            Image.fromarray(mask).save(data / f"c{k}_mask.png")
        else:
            _nifti(data / f"c{k}_mask{suffix}", mask)
    return data


def _binary(k: int, high: int = 255) -> np.ndarray:
    mask = np.zeros(RASTER_SHAPE, np.uint8)
    mask[10:25, 8 + k : 28] = high
    return mask


def _anti_aliased(k: int) -> np.ndarray:
    mask = _binary(k)
    if k == 1:
        mask[9, 8:28] = 128
    return mask


@case(
    "train-anti-aliased-mask",
    "train",
    EXIT_BAD,
    allof(
        r"^medseg train: error: .*c1_mask\.png: mask values \[0, 128, 255\]",
        r"do not look like class labels",
        r"data\.label_values \(--label-values 0 128 255\)",
    ),
)
def _train_anti_aliased(ws: Workspace) -> list[str]:
    return ws.train(_label_pairs(ws, _anti_aliased))


@case(
    "train-mask-value-outside-label-values",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*c1_mask\.png: mask values \[128\] are not in data\.label_values \[0, 255\]",
)
def _train_outside(ws: Workspace) -> list[str]:
    return ws.train(_label_pairs(ws, _anti_aliased), "--label-values", "0", "255")


@case("train-binary-0-255-masks", "train", EXIT_OK, written=("out/checkpoints/best.pt",))
def _train_0_255(ws: Workspace) -> list[str]:
    return ws.train(_label_pairs(ws, _binary))


@case(
    "train-colour-mask",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*_mask\.png: a colour mask \(3 channels that differ\)",
)
def _train_colour(ws: Workspace) -> list[str]:
    def colour(k: int) -> np.ndarray:
        rgb = np.zeros((*RASTER_SHAPE, 3), np.uint8)
        rgb[10:20, 8:20, 0] = 255
        rgb[22:30, 8:20, 1] = 255
        return rgb

    return ws.train(_label_pairs(ws, colour))


def _train_volumes(ws: Workspace, data: Path) -> list[str]:
    """``medseg -q train`` of one epoch on the small volumes of ``data``."""
    return [
        "-q",
        "train",
        "--data",
        str(data),
        "--out",
        str(ws.output),
        "--epochs",
        "1",
        "--patch-size",
        "16",
        "16",
        "8",
    ]


@case(
    "train-float-label-values",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*labelsTr/c\d\.nii\.gz: mask values 0, 0\.37, 0\.74 are not integers",
)
def _train_float_labels(ws: Workspace) -> list[str]:
    data = ws.root / "data"
    for k in range(3):
        ws.volume(f"c{k}.nii.gz", data / "imagesTr", seed=k)
        labels = np.zeros(VOLUME_SHAPE, np.float32)
        labels[4:10, 4:10, 2:6], labels[12:16, 12:16, 2:6] = 0.37, 0.74
        _nifti(data / "labelsTr" / f"c{k}.nii.gz", labels)
    return _train_volumes(ws, data)


@case(
    "train-nifti-zero-voxel-size",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*imagesTr/c1\.nii\.gz: voxel spacing \(pixdim\) .* must be positive and finite",
)
def _train_zero_pixdim(ws: Workspace) -> list[str]:
    data = ws.root / "data"
    for k in range(3):
        image = ws.volume(f"c{k}.nii.gz", data / "imagesTr", seed=k)
        labels = np.zeros(VOLUME_SHAPE, np.uint8)
        labels[4:10, 4:10, 2:6] = 1
        _nifti(data / "labelsTr" / f"c{k}.nii.gz", labels)
        if k == 1:
            _zero_pixdim(image)
    return _train_volumes(ws, data)


@case(
    "train-plateau-with-time-schedule",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*schedule_by_time follows the budget with cosine, poly or none, not scheduler='plateau'",
)
def _train_plateau_by_time(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    return ws.train(
        ws.root / "data",
        "--set",
        "train.scheduler=plateau",
        "--set",
        "train.schedule_by_time=true",
        "--set",
        "train.time_budget_min=1",
    )


@case("train-no-accumulation-steps", "train", EXIT_BAD, r"^medseg train: error: .*accumulate_steps must be >= 1, got 0")
def _train_no_accumulation(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    return ws.train(ws.root / "data", "--set", "train.accumulate_steps=0")


@case(
    "train-warmup-longer-than-the-run",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*warmup_epochs must be in \[0, epochs=1\), got 3",
)
def _train_long_warmup(ws: Workspace) -> list[str]:
    _pairs(ws, ws.root / "data")
    return ws.train(ws.root / "data", "--set", "train.warmup_epochs=3")


# ---------------------------------------------------------------------------------------------- exported models
def _artefact(ws: Workspace, suffix: str, dims: int = 2) -> Path:
    """The trained run of ``dims`` exported (``medseg export``) to ``ws.root/model{suffix}``."""
    from medseg_monai.inference import Predictor
    from medseg_monai.models.artefact import export_artefact

    predictor = Predictor.from_run(ws.runs[dims])
    return export_artefact(predictor.network, predictor.config, ws.root / f"model{suffix}").path


@case(
    "predict-artefact-onnx-truncated",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*model\.onnx: not a readable ONNX model \(truncated, or another kind of file",
)
def _truncated_onnx(ws: Workspace) -> list[str]:
    ws.raster("scan.png")
    model = _artefact(ws, ".onnx")
    truncate(model)
    return ws.predict(2, model=model)


@case(
    "predict-artefact-foreign-file-as-ts",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*model\.ts: not a readable TorchScript archive \(truncated, or another kind of file",
)
def _foreign_ts(ws: Workspace) -> list[str]:
    ws.raster("scan.png")
    model = ws.root / "model.ts"
    model.write_bytes(PNG_BYTES)
    return ws.predict(2, model=model)


@case(
    "predict-artefact-newer-format",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*model\.onnx: written by a newer medseg-monai( \S+)? "
    r"\(format version 2; this one reads 1\)",
)
def _newer_artefact(ws: Workspace) -> list[str]:
    import onnx

    ws.raster("scan.png")
    path = _artefact(ws, ".onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "medseg.format_version":
            prop.value = "2"
    onnx.save(model, str(path))
    return ws.predict(2, model=path)


@case(
    "export-format-contradicts-suffix",
    "export",
    EXIT_BAD,
    r"^medseg export: error: .*model\.ts: onnx models are named \*\.onnx",
)
def _export_contradiction(ws: Workspace) -> list[str]:
    return ["-q", "export", "--model", str(ws.runs[2]), "--format", "onnx", "--out", str(ws.root / "model.ts")]


# ----------------------------------------------------------------------------------------- several channels per case
#: channel names of the two-channel model below
CHANNELS = ("T2", "ADC")


def _two_channel_model(ws: Workspace) -> Path:
    """An untrained tiny 3D network taking two named channels (T2, ADC), saved as a run folder."""
    import torch

    from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, RuntimeConfig
    from medseg_monai.models.checkpoint import save_checkpoint
    from medseg_monai.networks import build_network

    config = RunConfig(
        data=DataConfig(
            spatial_dims=3,
            patch_size=(16, 16, 8),
            in_channels=2,
            channel_names=CHANNELS,
            label_values=(0, 1),
            label_names=("background", "lesion"),
            target_spacing=SPACING,
        ),
        model=ModelConfig(name="unet", options={"channels": [4, 8], "strides": [2], "num_res_units": 0}),
        infer=InferConfig(sw_batch_size=2),
        runtime=RuntimeConfig(device="cpu"),
    )
    torch.manual_seed(0)
    run = ws.root / "model_2ch"
    run.mkdir()
    config.save(run / "config.json")
    save_checkpoint(
        run / "checkpoints" / "best.pt",
        {"network": build_network(config, load_pretrained=False).state_dict(), "config": config.to_dict()},
    )
    return run


def _channel_case(ws: Workspace, name: str, channels: Sequence[int] = (0, 1), folder: Path | None = None) -> None:
    for k in channels:
        ws.volume(f"{name}_{k:04d}.nii.gz", folder, seed=k)


@case(
    "predict-case-missing-a-channel",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*in/bad: channel 1 \(ADC\) missing: bad_0001\.nii\.gz not found",
    written=("out/good.nii.gz",),
)
def _missing_channel(ws: Workspace) -> list[str]:
    _channel_case(ws, "good")
    _channel_case(ws, "bad", channels=(0,))
    return ws.predict(3, model=_two_channel_model(ws))


@case(
    "predict-channels-on-different-grids",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*in/bad_0001\.nii\.gz: channel 1 lies on another voxel grid than channel 0 \(bad_0000\.nii\.gz\)",
    written=("out/good.nii.gz",),
)
def _channels_moved(ws: Workspace) -> list[str]:
    import nibabel as nib

    _channel_case(ws, "good")
    _channel_case(ws, "bad", channels=(0,))
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (4.0, 0.0, 0.0)  # channel 1 lies 4 mm to the side of channel 0
    nib.Nifti1Image(_blob(VOLUME_SHAPE, 1), affine).to_filename(str(ws.inputs / "bad_0001.nii.gz"))
    return ws.predict(3, model=_two_channel_model(ws))


@case(
    "predict-channels-of-different-shapes",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*in/bad_0001\.nii\.gz: channel 1 is \(16, 20, 12\) "
    r"but channel 0 \(bad_0000\.nii\.gz\) is \(20, 20, 12\)",
    written=("out/good.nii.gz",),
)
def _channels_resized(ws: Workspace) -> list[str]:
    _channel_case(ws, "good")
    _channel_case(ws, "bad", channels=(0,))
    ws.volume("bad_0001.nii.gz", shape=(16, 20, 12))
    return ws.predict(3, model=_two_channel_model(ws))


@case(
    "predict-single-file-to-a-two-channel-model",
    "predict",
    EXIT_FAILED,
    allof(
        r"^FAILED .*in/scan\.nii\.gz: channel 1 \(ADC\) missing: ",
        r"the model takes 2 channel\(s\): 0 \(T2\), 1 \(ADC\)",
    ),
)
def _single_file_two_channels(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    return ws.predict(3, model=_two_channel_model(ws))


@case(
    "train-case-missing-a-channel",
    "train",
    EXIT_BAD,
    r"^medseg train: error: .*data/imagesTr/c1: channel 1 \(ADC\) missing: c1_0001\.nii\.gz not found",
)
def _train_missing_channel(ws: Workspace) -> list[str]:
    data = ws.root / "data"
    for k in range(3):
        _channel_case(ws, f"c{k}", channels=(0,) if k == 1 else (0, 1), folder=data / "imagesTr")
        _nifti(data / "labelsTr" / f"c{k}.nii.gz", (_blob(VOLUME_SHAPE, k) > 0.5).astype(np.uint8))
    (data / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T2", "1": "ADC"},
                "file_ending": ".nii.gz",
                "labels": {"background": 0, "lesion": 1},
            }
        )
    )
    return ws.train(data)


# ---------------------------------------------------------------------------------------------- maps and statistics
@case(
    "predict-uncertainty-without-flips",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: save_uncertainty is the entropy over test-time flips; add --tta-flips",
)
def _uncertainty_without_flips(ws: Workspace) -> list[str]:
    ws.raster("scan.png")
    return ws.predict(2, "--save-uncertainty")


@case(
    "predict-probabilities-with-full-stitching",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: probability and entropy maps need infer.stitching='slab', got 'full'",
)
def _probabilities_full_stitching(ws: Workspace) -> list[str]:
    ws.raster("scan.png")
    return ws.predict(2, "--save-probabilities", "--stitching", "full")


@case(
    "predict-negative-entropy-threshold",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: high_entropy must be >= 0, got -0.1",
)
def _negative_entropy_threshold(ws: Workspace) -> list[str]:
    ws.raster("scan.png")
    return ws.predict(2, "--save-uncertainty", "--tta-flips", "--high-entropy", "-0.1")


@case(
    "predict-statistics-beside-a-bad-case",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*broken\.png: ",
    written=("out/good.png", "out/good_probabilities.tif", "out/predict_statistics.csv"),
)
def _statistics_beside_bad(ws: Workspace) -> list[str]:
    ws.raster("good.png")
    (ws.inputs / "broken.png").write_bytes(PNG_BYTES[:30])
    return ws.predict(2, "--statistics", "--save-probabilities")


# ---------------------------------------------------------------------------------------------- DICOM SEG, series, zips
def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _list_file(ws: Workspace, *paths: Path) -> Path:
    """A ``.txt`` list naming ``paths`` (zips are inputs when named, not when found in a folder)."""
    listing = ws.root / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    return listing


@case(
    "predict-seg-for-a-nifti-source",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: .*in/scan\.nii\.gz: a DICOM SEG \('seg'\) needs a DICOM series source, "
    r"this is a nifti image",
)
def _seg_for_nifti(ws: Workspace) -> list[str]:
    ws.volume("scan.nii.gz")
    return ws.predict(3, "--output-format", "seg")


@case(
    "predict-zip-corrupt",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*in/bad\.zip: not a readable zip archive",
    written=("out/good.nii.gz",),
)
def _zip_corrupt(ws: Workspace) -> list[str]:
    good = ws.volume("good.nii.gz")
    bad = ws.inputs / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + random_bytes(2000))
    return ws.predict(3, inputs=_list_file(ws, good, bad))


@case(
    "predict-zip-without-dicom",
    "predict",
    EXIT_FAILED,
    r"^FAILED .*in/notes\.zip: the zip holds no DICOM files \(2 other file\(s\)\)",
    written=("out/good.nii.gz",),
)
def _zip_without_dicom(ws: Workspace) -> list[str]:
    good = ws.volume("good.nii.gz")
    notes = _zip(ws.inputs / "notes.zip", {"readme.txt": b"no images here", "scan/picture.png": PNG_BYTES})
    return ws.predict(3, inputs=_list_file(ws, good, notes))


@case("predict-zip-of-a-series", "predict", EXIT_OK, written=("out/case.dcm",))
def _zip_series(ws: Workspace) -> list[str]:
    series = ws.volume("ct", ws.root / "series")
    archive = _zip(ws.inputs / "case.zip", {f"DICOM/{p.name}": p.read_bytes() for p in sorted(series.iterdir())})
    shutil.rmtree(series)
    return ws.predict(3, inputs=archive)


@case(
    "predict-series-uid-not-present",
    "predict",
    EXIT_BAD,
    r"^medseg predict: error: --series 1\.2\.3\.4: "
    r"no DICOM series with this SeriesInstanceUID in the inputs \(.*in/ct\)",
)
def _series_not_present(ws: Workspace) -> list[str]:
    ws.volume("ct")
    return ws.predict(3, "--series", "1.2.3.4")


@case(
    "predict-dicom-localizer-in-the-series",
    "predict",
    EXIT_OK,
    warning=r"in/ct: left out 1 localizer slice\(s\)",
    written=("out/ct.dcm",),
)
def _localizer_in_series(ws: Workspace) -> list[str]:
    series = ws.volume("ct")
    data = (series / "slice_000.dcm").read_bytes()
    localizer = data.replace(b"1\\0\\0\\0\\1\\0", b"1\\0\\0\\0\\0\\1")  # a coronal slice in the axial series
    assert localizer != data
    (series / "scout.dcm").write_bytes(localizer.replace(b"77.1\x00", b"77.99").replace(b"77.1 ", b"77.99"))
    return ws.predict(3)


@case(
    "predict-seg-of-a-series-without-frame-of-reference",
    "predict",
    EXIT_FAILED,
    allof(
        r"^FAILED .*in/sc: cannot make a DICOM SEG of this series \(", r"Frame Of Reference", r"--output-format nifti"
    ),
    written=("out/good.nii.gz",),
)
def _seg_without_frame_of_reference(ws: Workspace) -> list[str]:
    ws.volume("good.nii.gz")
    series = ws.volume("sc")
    for path in sorted(series.iterdir()):  # the FrameOfReferenceUID's value becomes one of another tag
        path.write_bytes(path.read_bytes().replace(b"\x20\x00\x52\x00", b"\x20\x00\x53\x00"))
    return ws.predict(3)
