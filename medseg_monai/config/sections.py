"""The settings of a run, one frozen dataclass per concern.

One :class:`RunConfig` describes a whole run (data, network, training, inference, runtime). It is saved as
``config.json`` in every run folder and read back by :class:`~medseg_monai.inference.Predictor`, so a
model folder always carries what is needed to preprocess new images exactly as in training.
:class:`~medseg_monai.config.BatchOptions` (its own module) says how a batch of predictions is run; it is
not part of a run. The sections are in :mod:`~medseg_monai.config.data`, :mod:`~medseg_monai.config.training`
, :mod:`~medseg_monai.config.inference`
and :mod:`~medseg_monai.config.runtime` (device, precision and layout, shared by training and inference).

Fields left as ``None`` that depend on the data (2D or 3D, patch size, input channels, label values,
target spacing) are resolved by :func:`medseg_monai.data.resolve_data_config` when training starts;
the resolved copy is what lands in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medseg_monai.config.data import DataConfig
from medseg_monai.config.fields import from_mapping, replace_fields, to_jsonable
from medseg_monai.config.inference import InferConfig
from medseg_monai.config.runtime import RUNTIME_FIELDS, RuntimeConfig
from medseg_monai.config.training import ModelConfig, TrainConfig
from medseg_monai.config.types import CONFIG_VERSION
from medseg_monai.errors import ConfigError

__all__ = [
    "SECTIONS",
    "DataConfig",
    "InferConfig",
    "ModelConfig",
    "RunConfig",
    "RuntimeConfig",
    "TrainConfig",
    "dataset_fields",
]

logger = logging.getLogger(__name__)


def _upgrade(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read configs of older versions: ``precision`` replaced ``amp`` (``amp: false`` is ``fp32``),
    ``train.schedule_by_time`` replaced ``train.fit_epochs_to_budget``, and version 2 moved ``device``,
    ``precision`` and ``memory_format`` of ``train`` and ``infer`` into one ``runtime`` section."""
    raw = dict(raw)
    for name in ("train", "infer"):
        section = raw.get(name)
        if not isinstance(section, Mapping) or not {"amp", "fit_epochs_to_budget"} & set(section):
            continue
        section = dict(section)
        if section.pop("amp", None) is False:
            section.setdefault("precision", "fp32")
        if "fit_epochs_to_budget" in section:
            section.setdefault("schedule_by_time", section.pop("fit_epochs_to_budget"))
        raw[name] = section
    raw = _runtime_section(raw)
    raw["version"] = CONFIG_VERSION
    return raw


def _runtime_section(raw: dict[str, Any]) -> dict[str, Any]:
    """Move version-1 ``train``/``infer`` runtime fields into ``runtime``. A run folder's config is read to
    predict, so where both sections set a field, the ``infer`` value wins over ``train``'s (said in a warning
    when they differ); ``auto`` gives way to a value set."""
    moved: dict[str, dict[str, Any]] = {}
    for name in ("train", "infer"):
        section = raw.get(name)
        if isinstance(section, Mapping) and set(RUNTIME_FIELDS) & set(section):
            section = dict(section)
            moved[name] = {key: section.pop(key) for key in RUNTIME_FIELDS if key in section}
            raw[name] = section
    if not moved:
        return raw
    runtime = dict(raw.get("runtime") or {})
    for key in RUNTIME_FIELDS:
        values = {name: fields[key] for name, fields in moved.items() if key in fields}
        chosen = [value for value in values.values() if value != "auto"] or list(values.values())
        if not chosen or key in runtime:
            continue
        runtime[key] = chosen[-1]
        if len(set(map(str, chosen))) > 1:
            logger.warning(
                "config: train.%s=%r and infer.%s=%r are one runtime.%s now; using %r",
                key, values["train"], key, values["infer"], key, chosen[-1],
            )  # fmt: skip
    raw["runtime"] = runtime
    return raw


#: the sections of a RunConfig, by name
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "infer": InferConfig,
    "runtime": RuntimeConfig,
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json`` next to its checkpoints."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    infer: InferConfig = dataclasses.field(default_factory=InferConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        dims = self.data.spatial_dims
        if self.infer.roi_size is not None and dims is not None and len(self.infer.roi_size) != dims:
            raise ConfigError(f"infer.roi_size must hold {dims} sizes, got {self.infer.roi_size}")

    @property
    def roi_size(self) -> tuple[int, ...]:
        """Sliding-window size: ``infer.roi_size`` or the training patch size."""
        size = self.infer.roi_size or self.data.patch_size
        if size is None:
            raise ConfigError("data.patch_size is not resolved yet; train or set data.patch_size")
        return tuple(size)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Build from a (JSON) mapping; unknown keys raise ``ValueError`` naming them."""
        version = raw.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ConfigError(f"config version {version} is newer than this package supports ({CONFIG_VERSION})")
        return from_mapping(cls, _upgrade(raw), "config")

    def save(self, path: str | Path) -> Path:
        """Write as JSON atomically."""
        from medseg_monai.utils import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: {err}") from None

    def override(self, overrides: Mapping[str, Any]) -> RunConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"train.epochs": 3}``."""
        changes: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, _, field = dotted.partition(".")
            if not field or section not in SECTIONS:
                raise ConfigError(f"override key must look like 'section.field', got {dotted!r}")
            known = [f.name for f in dataclasses.fields(SECTIONS[section])]
            if field in RUNTIME_FIELDS and section in ("train", "infer"):
                raise ConfigError(f"{dotted} is runtime.{field} now (one setting for training and inference)")
            if field not in known:
                raise ConfigError(f"unknown config field {dotted!r}; known: {sorted(known)}")
            changes.setdefault(section, {})[field] = value
        try:
            sections = {
                name: replace_fields(getattr(self, name), fields, f"config.{name}") for name, fields in changes.items()
            }
            return dataclasses.replace(self, **sections)
        except TypeError as err:
            raise ConfigError(str(err)) from None


def dataset_fields(path: str | Path) -> dict[str, str]:
    """``{"datalist": path}`` for a ``.json`` datalist, else ``{"data_dir": path}``: what a dataset argument sets."""
    key = "datalist" if str(path).lower().endswith(".json") else "data_dir"
    return {key: str(path)}
