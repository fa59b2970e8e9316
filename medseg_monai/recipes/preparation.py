"""What a recipe run starts from: its cases (the split, ``datalist.json``) and its config."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError
from medseg_monai.recipes.spec import Recipe, split_cases
from medseg_monai.utils import atomic_write_text

__all__ = ["SMOKE_CASES", "choose_cases", "prepare_config", "write_datalist"]

#: training and validation cases kept by ``--smoke``
SMOKE_CASES = (6, 2)


def _subset(items: Sequence[dict], count: int, seed: int) -> list[dict]:
    if len(items) <= count:
        return list(items)
    chosen = random.Random(seed).sample(list(items), count)
    return sorted(chosen, key=lambda item: item["name"])


def choose_cases(recipe: Recipe, dataset_dir: Path, seed: int, smoke: bool) -> tuple[list[dict], list[dict]]:
    """The training and validation cases of the dataset folder, as the recipe splits them (a few with ``smoke``)."""
    from medseg_monai.data.datalist import discover_pairs

    train_items, val_items = split_cases(recipe.split, discover_pairs(dataset_dir), seed)
    if smoke:
        train_items, val_items = _subset(train_items, SMOKE_CASES[0], seed), _subset(val_items, SMOKE_CASES[1], seed)
    return train_items, val_items


def write_datalist(path: Path, train_items: Sequence[dict], val_items: Sequence[dict]) -> Path:
    def entries(items: Sequence[dict]) -> list[dict]:
        return [{"image": item["image"], "label": item["label"], "name": item["name"]} for item in items]

    return atomic_write_text(
        path, json.dumps({"training": entries(train_items), "validation": entries(val_items)}, indent=2) + "\n"
    )


def prepare_config(
    recipe: Recipe,
    network: str,
    smoke: bool,
    dataset_dir: Path,
    datalist: Path,
    seed: int,
    pretrained: str | None,
    overrides: Mapping[str, Any] | None,
) -> RunConfig:
    """The recipe's config of ``network`` on this dataset folder and split, with ``seed``, weights and overrides."""
    config = recipe.config(network, smoke=smoke)
    if pretrained and config.model.name != "deeplabv3":
        raise ConfigError(f"--pretrained loads DeepLabV3 backbone weights; network {network!r} takes none")
    data = dataclasses.replace(config.data, data_dir=str(dataset_dir), datalist=str(datalist), seed=seed)
    model = dataclasses.replace(
        config.model, pretrained=str(Path(pretrained).expanduser().resolve()) if pretrained else None
    )
    config = dataclasses.replace(config, data=data, model=model, train=dataclasses.replace(config.train, seed=seed))
    if pretrained and not Path(model.pretrained).is_file():
        raise FileNotFoundError(f"{pretrained}: pretrained weights file not found")
    return config.override(dict(overrides)) if overrides else config
