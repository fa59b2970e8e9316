"""What a real-data recipe is: a dataset folder, how to split it, what to score, and a config per network."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError

__all__ = ["DATA_DIR_ENV", "Recipe", "SplitSpec", "default_data_root", "resolve_data_root", "split_cases"]

DATA_DIR_ENV = "MEDSEG_DATA_DIR"
SPLIT_MODES = ("ratio", "prefix")
#: a network key of a recipe may name a variant of a network: `unet-2.5d` is a `unet` config
VARIANT_SEPARATOR = "-"


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How a dataset's cases are divided into training and validation.

    Attributes:
        mode: ``ratio`` (seeded random share ``val_fraction``) or ``prefix`` (by case-name prefix).
        val_fraction: share of cases (``ratio``) held out for validation.
        group_pattern: regular expression whose first group names the unit that must stay on one side
            of the split (a patient, a slice number); ``None`` splits case by case, and a name that does
            not match is a group of its own.
        group_block: with a numeric group, consecutive numbers are gathered in blocks of this size
            (serial sections: whole blocks go to validation, so few validation slices have a
            training neighbour).
        train_prefixes, val_prefixes: ``prefix`` mode: case names starting with these train / validate;
            a case matching neither is an error.
    """

    mode: str = "ratio"
    val_fraction: float = 0.2
    group_pattern: str | None = None
    group_block: int | None = None
    train_prefixes: tuple[str, ...] = ()
    val_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ConfigError(f"split mode must be one of {SPLIT_MODES}, got {self.mode!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.mode == "prefix" and not (self.train_prefixes and self.val_prefixes):
            raise ConfigError("prefix split needs train_prefixes and val_prefixes")
        if self.group_block is not None and self.group_block < 1:
            raise ConfigError(f"group_block must be >= 1, got {self.group_block}")

    def group_of(self, name: str) -> str:
        """The group a case name belongs to (the name itself without ``group_pattern``)."""
        if not self.group_pattern:
            return name
        found = re.search(self.group_pattern, name)
        if not found:  # a case outside the naming scheme is its own group
            return name
        key = found.group(1)
        if self.group_block and key.isdigit():
            return f"block{int(key) // self.group_block}"
        return key


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A reproducible train -> predict -> evaluate recipe for one dataset under the data root.

    Attributes:
        name: registry key (also the ``pipelines/<name>.py`` script name).
        dataset: folder under the data root.
        description: one line for ``--help`` and the results table.
        spatial_dims: 2 or 3.
        split: how to split the cases (see :class:`SplitSpec`).
        configs: default :class:`RunConfig` per allowed network (``data.data_dir`` is filled in at run time).
        smoke_configs: configs of the ``--smoke`` mode (tiny schedule, same networks).
        eval_labels: label value -> name, the classes scored on the written masks.
        primary_labels: the classes behind the headline value and the best/worst ranking.
        headline: name of the headline metric in summaries and tables (e.g. ``mean Dice``).
        headline_metric: per-case metric behind it (``dice``; inside ``roi_dir`` when set).
        target: the headline value the issue asks for, or ``None``.
        roi_dir: folder beside ``images/`` with region-of-interest masks (metrics inside them only).
        group_pattern: regular expression naming a case's patient, for per-patient pooled metrics.
    """

    name: str
    dataset: str
    description: str
    spatial_dims: int
    split: SplitSpec
    configs: Mapping[str, RunConfig]
    smoke_configs: Mapping[str, RunConfig]
    eval_labels: Mapping[int, str]
    primary_labels: tuple[int, ...]
    headline: str = "mean Dice"
    headline_metric: str = "dice"
    target: float | None = None
    roi_dir: str | None = None
    group_pattern: str | None = None

    def __post_init__(self) -> None:
        for field in ("configs", "smoke_configs", "eval_labels"):
            object.__setattr__(self, field, MappingProxyType(dict(getattr(self, field))))
        if not self.configs:
            raise ConfigError(f"recipe {self.name!r} has no network configs")
        if set(self.smoke_configs) != set(self.configs):
            raise ConfigError(f"recipe {self.name!r}: smoke configs must cover the same networks as the configs")
        for network, config in list(self.configs.items()) + list(self.smoke_configs.items()):
            if network.split(VARIANT_SEPARATOR)[0] != config.model.name:
                raise ConfigError(f"recipe {self.name!r}: config for {network!r} builds {config.model.name!r}")
            if config.data.image_dims != self.spatial_dims:
                raise ConfigError(
                    f"recipe {self.name!r}: {network} config is for {config.data.image_dims}D images, "
                    f"recipe is {self.spatial_dims}D"
                )
        unknown = set(self.primary_labels) - set(self.eval_labels)
        if not self.primary_labels or unknown:
            raise ConfigError(
                f"recipe {self.name!r}: primary labels {self.primary_labels} must be among {sorted(self.eval_labels)}"
            )

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(self.configs)

    def config(self, network: str, *, smoke: bool = False) -> RunConfig:
        """The default config of ``network``; ``ValueError`` naming the allowed ones otherwise."""
        table = self.smoke_configs if smoke else self.configs
        if network not in table:
            raise ConfigError(f"recipe {self.name!r} runs networks {', '.join(self.networks)}; got {network!r}")
        return table[network]

    def patient_of(self, name: str) -> str | None:
        """Patient key of a case name for pooled per-patient metrics (digits without leading zeros)."""
        if not self.group_pattern:
            return None
        found = re.search(self.group_pattern, name)
        if not found:
            return None
        key = found.group(1)
        return str(int(key)) if key.isdigit() else key


def default_data_root() -> Path:
    """``$MEDSEG_DATA_DIR``, else ``../shared/data`` beside the project folder."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def resolve_data_root(data_root: str | Path | None = None, dataset: str | None = None) -> Path:
    """The data root (argument, ``$MEDSEG_DATA_DIR`` or the default) and, when given, check ``dataset`` in it.

    Raises:
        FileNotFoundError: naming the missing folder and how to point at the right one.
    """
    root = Path(data_root) if data_root else default_data_root()
    hint = f"pass --data-root or set {DATA_DIR_ENV}"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: real-data folder not found; {hint}")
    if dataset is not None and not (root / dataset).is_dir():
        raise FileNotFoundError(f"{root / dataset}: dataset folder {dataset!r} not found under the data root; {hint}")
    return root


def split_cases(split: SplitSpec, pairs: Sequence[Mapping[str, Any]], seed: int = 0) -> tuple[list[Any], list[Any]]:
    """Training and validation cases of ``pairs`` (dicts with ``name``) as ``split`` describes.

    Raises:
        ValueError: a case fits no prefix, or a side is empty.
    """
    from medseg_monai.data.splits import split_by_group, split_pairs

    if split.mode == "prefix":
        train, val, unknown = [], [], []
        for item in pairs:
            name = str(item["name"])
            if name.startswith(split.val_prefixes):
                val.append(item)
            elif name.startswith(split.train_prefixes):
                train.append(item)
            else:
                unknown.append(name)
        if unknown:
            raise ConfigError(
                f"{len(unknown)} case(s) start with none of {split.train_prefixes + split.val_prefixes}: "
                f"{', '.join(sorted(unknown)[:5])}"
            )
    elif split.group_pattern:
        train, val = split_by_group(pairs, split.group_of, split.val_fraction, seed)
    else:
        train, val = split_pairs(pairs, split.val_fraction, seed)
    if not train or not val:
        raise ConfigError(f"split gives {len(train)} training and {len(val)} validation cases; both must be non-empty")
    return list(train), list(val)
