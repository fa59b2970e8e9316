"""Exported models: one ONNX or TorchScript file holding the network and everything needed to segment a file.

``medseg export`` writes the trained network (float32, eval mode, first output only, dynamic batch, windows of
the run's roi size) together with the run's whole configuration (:meth:`RunConfig.to_dict`: label values and
names, orientation, target spacing, intensity normalisation, roi size, overlap, blend mode, TTA axes, 2D/2.5D
slicing), :data:`ARTEFACT_FORMAT_VERSION` and the package version::

    network, config = load_artefact("liver.onnx")        # an nn.Module around ONNX Runtime, the RunConfig
    predictor = Predictor.from_artefact("liver.onnx")     # or Predictor.from_run("liver.onnx")

ONNX keeps them in the model's ``metadata_props`` (``medseg.config``, ``medseg.format_version``,
``medseg.version``, ``medseg.input_shape``); TorchScript in the archive's extra files (``medseg/config.json``,
``medseg/format_version``, ``medseg/version``, ``medseg/input_shape``). Load artefacts from trusted sources
only, as any model file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medseg_monai.config import RunConfig
from medseg_monai.errors import CheckpointError, ConfigError
from medseg_monai.utils import atomic_path, package_versions

__all__ = [
    "ARTEFACT_FORMATS",
    "ARTEFACT_FORMAT_VERSION",
    "ARTEFACT_SUFFIXES",
    "ExportResult",
    "OnnxNetwork",
    "artefact_format",
    "example_windows",
    "export_artefact",
    "load_artefact",
]

logger = logging.getLogger(__name__)

#: version of the artefact layout (metadata keys and meaning); a reader refuses newer ones
ARTEFACT_FORMAT_VERSION = 1
#: file suffix -> format
ARTEFACT_FORMATS: dict[str, str] = {".onnx": "onnx", ".ts": "torchscript"}
ARTEFACT_SUFFIXES = tuple(ARTEFACT_FORMATS)
#: what installs ONNX export and ONNX Runtime
EXPORT_EXTRA = 'pip install "medseg-monai[export]"'
ONNX_OPSET = 17
#: metadata entries: ONNX ``metadata_props`` key and TorchScript extra file of each
_ONNX_KEYS = {
    "config": "medseg.config",
    "format_version": "medseg.format_version",
    "version": "medseg.version",
    "input_shape": "medseg.input_shape",
    "precision": "medseg.precision",
}
#: the arithmetic ONNX Runtime runs an exported model in (a TorchScript model runs under ``runtime.precision``)
ONNX_PRECISION = "fp32"
_TS_FILES = {
    "config": "medseg/config.json",
    "format_version": "medseg/format_version",
    "version": "medseg/version",
    "input_shape": "medseg/input_shape",
}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_artefact` wrote: the file, its format and size, and how far its logits are from the
    network's."""

    path: Path
    format: str
    bytes: int
    max_abs_diff: float


class FirstOutput(torch.nn.Module):
    """``network`` returning only its first output (deep supervision returns a list of heads)."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.network(x)
        return output[0] if isinstance(output, (list, tuple)) else output


def artefact_format(path: str | Path, fmt: str | None = None) -> str:
    """The format of an artefact file: ``fmt`` (``onnx``, ``torchscript``) or the one its suffix names.

    Raises:
        ConfigError: an unknown format, a suffix naming no format, or one naming another format than ``fmt``.
    """
    suffix = Path(path).suffix.lower()
    named = ARTEFACT_FORMATS.get(suffix)
    if fmt is not None and fmt not in ARTEFACT_FORMATS.values():
        raise ConfigError(f"unknown export format {fmt!r}; choices: {', '.join(ARTEFACT_FORMATS.values())}")
    if named is None:
        raise ConfigError(
            f"{path}: an exported model is named *.onnx (ONNX) or *.ts (TorchScript); the suffix picks the loader"
        )
    if fmt is not None and fmt != named:
        wanted = next(s for s, f in ARTEFACT_FORMATS.items() if f == fmt)
        raise ConfigError(f"{path}: {fmt} models are named *{wanted} (the suffix picks the loader)")
    return named


def example_windows(config: RunConfig, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A fixed batch of network inputs ``(batch, network_in_channels, *roi_size)``, float32 (seeded normal noise)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, config.data.network_in_channels, *config.roi_size)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def _metadata(config: RunConfig) -> dict[str, str]:
    shape = [-1, config.data.network_in_channels, *config.roi_size]
    return {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "format_version": str(ARTEFACT_FORMAT_VERSION),
        "version": package_versions(("medseg-monai",))["medseg-monai"],
        "input_shape": json.dumps(shape),
    }


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ConfigError(
            f"ONNX export and ONNX Runtime are not installed ({err.name} missing): {EXPORT_EXTRA}"
        ) from None
    return onnx, onnxruntime


# ---------------------------------------------------------------------------------------------- export
def export_artefact(
    network: torch.nn.Module, config: RunConfig, out: str | Path, fmt: str | None = None
) -> ExportResult:
    """Write ``network`` (weights loaded, built for ``config``) and ``config`` to the one file ``out``, atomically.

    ``fmt`` is ``onnx`` or ``torchscript`` (default: from the suffix, ``.onnx`` / ``.ts``). The network is
    exported on the CPU in float32 and eval mode, its first output only, for windows of ``config.roi_size``
    with any batch size. The written file is loaded back and checked against the network on a fixed window.

    Raises:
        ConfigError: a bad format or suffix; ONNX export not installed.
        CheckpointError: the exported network's logits differ from the network's (nothing is written).
        OutputError: ``out`` cannot be written.
    """
    out = Path(out)
    fmt = artefact_format(out, fmt)
    if fmt == "onnx":
        _require_onnx()
    network = copy.deepcopy(network).to(
        "cpu", torch.float32, memory_format=torch.contiguous_format
    )  # the caller's stays
    module = FirstOutput(network).eval()
    example, check = example_windows(config, batch=2), example_windows(config, batch=1, seed=1)
    metadata = _metadata(config) | ({"precision": ONNX_PRECISION} if fmt == "onnx" else {})
    with torch.no_grad():
        reference = module(check)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes on jit and the TorchScript-based ONNX exporter
        if fmt == "onnx":
            _write_onnx(module, example, metadata, tmp)
        else:
            with torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={_TS_FILES[k]: v for k, v in metadata.items()})
        loaded, _ = load_artefact(tmp)
        with torch.no_grad():
            diff = float((loaded(check) - reference).abs().max())
        tolerance = 1e-3 * max(1.0, float(reference.abs().max()))
        if not diff <= tolerance:
            raise CheckpointError(
                f"{out}: the exported {fmt} network's logits differ from the checkpoint's by {diff:.3g} "
                f"(more than {tolerance:.3g}); nothing written"
            )
        size = tmp.stat().st_size
    logger.info("%s: %s export, %d bytes, logits within %.2g of the network's", out, fmt, size, diff)
    return ExportResult(out, fmt, size, diff)


def _write_onnx(module: torch.nn.Module, example: torch.Tensor, metadata: Mapping[str, str], path: Path) -> None:
    """ONNX of ``module`` with a dynamic batch axis and the medseg metadata, written to ``path``."""
    onnx, _ = _require_onnx()
    buffer = io.BytesIO()
    try:  # the TorchScript-based exporter: fast and dependable for convolutional networks
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
        model = onnx.load_model_from_string(buffer.getvalue())
    except Exception as err:  # a torch without it, or an operator it lacks: the dynamo exporter
        logger.info(
            "TorchScript-based ONNX export failed (%s); using the dynamo exporter",
            str(err).splitlines()[0] if str(err) else err,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
            )
        model = program.model_proto
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = _ONNX_KEYS[key], value
    path.write_bytes(model.SerializeToString())


# ---------------------------------------------------------------------------------------------- load
def load_artefact(path: str | Path) -> tuple[torch.nn.Module, RunConfig]:
    """The network (eval mode, CPU) and run configuration of an artefact of :func:`export_artefact`.

    ``.ts`` loads with ``torch.jit.load``; ``.onnx`` becomes an :class:`OnnxNetwork` (ONNX Runtime on the CPU).

    Raises:
        CheckpointError: no such file, an unknown suffix, a truncated or foreign file, no medseg metadata, a
            format version newer than this package reads; one line naming the file.
        ConfigError: an ONNX artefact without ONNX Runtime installed.
    """
    path = Path(path)
    fmt = ARTEFACT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CheckpointError(f"{path}: not an exported model (the suffix must be {' or '.join(ARTEFACT_SUFFIXES)})")
    if not path.is_file():
        raise CheckpointError(f"{path}: exported model not found")
    return _load_onnx(path) if fmt == "onnx" else _load_torchscript(path)


def _config_from(path: Path, entries: Mapping[str, str], what: str) -> RunConfig:
    """The run configuration of the metadata ``entries`` (keys of :data:`_TS_FILES`), its version checked."""
    if not entries.get("format_version"):
        raise CheckpointError(f"{path}: {what} without medseg metadata (not written by medseg export)")
    try:
        version = int(entries["format_version"])
    except ValueError:
        raise CheckpointError(
            f"{path}: medseg format version {entries['format_version'][:40]!r} is not an integer"
        ) from None
    if version > ARTEFACT_FORMAT_VERSION:
        written = f" {entries['version']}" if entries.get("version") else ""
        raise CheckpointError(
            f"{path}: written by a newer medseg-monai{written} (format version {version}; "
            f"this one reads {ARTEFACT_FORMAT_VERSION})"
        )
    try:
        return RunConfig.from_dict(json.loads(entries.get("config") or ""))
    except (ValueError, TypeError) as err:  # JSONDecodeError, ConfigError, a field of the wrong type
        raise CheckpointError(f"{path}: the medseg config it holds is unusable ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def _load_torchscript(path: Path) -> tuple[torch.nn.Module, RunConfig]:
    try:  # the metadata first, read without loading any code
        with zipfile.ZipFile(path) as archive:
            entries = {}
            for name in archive.namelist():
                for key, extra in _TS_FILES.items():
                    if name.endswith(f"/extra/{extra}"):
                        entries[key] = archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as err:
        raise CheckpointError(
            f"{path}: not a readable TorchScript archive (truncated, or another kind of file: {_first_line(err)})"
        ) from None
    config = _config_from(path, entries, "a zip archive")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation note on torch.jit.load
            network = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError and others for broken archives
        raise CheckpointError(f"{path}: not a loadable TorchScript archive ({_first_line(err)})") from None
    return network.eval(), config


def _load_onnx(path: Path) -> tuple[torch.nn.Module, RunConfig]:
    onnx, ort = _require_onnx()
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and others for truncated or foreign bytes
        raise CheckpointError(
            f"{path}: not a readable ONNX model (truncated, or another kind of file: {_first_line(err)})"
        ) from None
    entries = {key: prop.value for prop in model.metadata_props for key, name in _ONNX_KEYS.items() if prop.key == name}
    config = _config_from(path, entries, "an ONNX model")
    del model
    network = OnnxNetwork(data, path, ort)
    network.precision = entries.get("precision") or ONNX_PRECISION  # files written before the entry: float32
    return network, config


class OnnxNetwork(torch.nn.Module):
    """An ONNX model run by ONNX Runtime on the CPU, as a module: ``(B, C, *roi) -> (B, K, *roi)`` logits.

    Inputs are run as float32 on the CPU; the output comes back on the input's device. It has no
    parameters; its buffer ``artefact_sha256`` (the file's digest) identifies the weights.
    """

    def __init__(self, data: bytes, path: Path, ort: Any = None) -> None:
        super().__init__()
        if ort is None:
            _, ort = _require_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's errors derive from Exception only
            raise CheckpointError(f"{path}: ONNX Runtime cannot load the model ({_first_line(err)})") from None
        self.path = path
        self.precision = ONNX_PRECISION
        self.input_name = self.session.get_inputs()[0].name
        digest = hashlib.sha256(data).digest()
        self.register_buffer("artefact_sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        output = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(output).to(x.device)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}"
