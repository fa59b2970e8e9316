"""Deterministic train/validation splits of image/mask pairs: case by case (:func:`split_pairs`) or keeping the
cases of each group, e.g. a patient, on one side (:func:`split_by_group`)."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medseg_monai.errors import ConfigError, InputError
from medseg_monai.keys import IMAGE, NAME

__all__ = ["split_by_group", "split_pairs"]

logger = logging.getLogger(__name__)


def _sort_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item.get(NAME, "")), str(item.get(IMAGE, ""))


def _check_split_args(pairs: Sequence[Any], val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not pairs:
        raise InputError("cannot split an empty list of pairs")


def _n_val(n: int, val_fraction: float) -> int:
    """``round(n * val_fraction)``, at least 1 when ``val_fraction > 0``, leaving at least 1 to train."""
    if val_fraction == 0 or n < 2:
        return 0
    return min(max(1, round(n * val_fraction)), n - 1)


def split_pairs(
    pairs: Sequence[Mapping[str, Any]], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """Deterministic train/validation split, independent of the input order.

    Items are sorted by name, shuffled with ``random.Random(seed)``, and ``round(n * val_fraction)``
    of them (at least one when ``val_fraction > 0`` and ``n >= 2``; never all) go to validation.
    Both lists come back sorted by name.
    """
    _check_split_args(pairs, val_fraction)
    ordered = sorted(pairs, key=_sort_key)
    random.Random(seed).shuffle(ordered)
    n_val = _n_val(len(ordered), val_fraction)
    return sorted(ordered[n_val:], key=_sort_key), sorted(ordered[:n_val], key=_sort_key)


def split_by_group(
    pairs: Sequence[Mapping[str, Any]],
    groups: Callable[[str], str],
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[Any], list[Any]]:
    """Like :func:`split_pairs`, but every group (``groups(name)``, e.g. a patient) lands on one side.

    Shuffled groups go to validation until it holds about ``val_fraction`` of the cases; at least
    one group trains. With a single group everything trains.
    """
    _check_split_args(pairs, val_fraction)
    members: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in sorted(pairs, key=_sort_key):
        members[str(groups(str(item[NAME])))].append(item)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    target = _n_val(len(pairs), val_fraction)
    val_groups: list[str] = []
    n_val = 0
    for group in order[:-1]:
        if n_val >= target:
            break
        val_groups.append(group)
        n_val += len(members[group])
    if target and not val_groups:
        logger.warning("one group only (%s); every case goes to training", order[0])
    train = [item for g in order if g not in val_groups for item in members[g]]
    val = [item for g in val_groups for item in members[g]]
    return sorted(train, key=_sort_key), sorted(val, key=_sort_key)
