"""Several processes on one batch: which part of the sorted case list this process runs.

:class:`Shard` splits the cases round-robin (``cases[part::parts]``): no overlap, no gap, and the same split
in every process, from ``--num-parts/--part-id`` or ``torchrun``'s ``WORLD_SIZE``/``RANK``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.batch.manifest import part_manifest_name, read_manifest
from medseg_monai.errors import ConfigError

__all__ = ["Shard", "resolve_shard", "wait_for_parts"]


@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count``; ``launcher`` is ``single``, ``explicit`` (``--part-id``) or ``torchrun``."""

    index: int = 0
    count: int = 1
    launcher: str = "single"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"part id must be in [0, {self.count}), got part {self.index} of {self.count}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def select(self, items: Sequence[Any]) -> list[Any]:
        """This part's share: every ``count``-th item starting at ``index``."""
        return list(items[self.index :: self.count])

    @property
    def manifest_name(self) -> str:
        return part_manifest_name(self.index, self.count)

    @property
    def label(self) -> str:
        return f"part {self.index + 1}/{self.count}" if self.sharded else ""


def resolve_shard(
    num_parts: int | None = None, part_id: int | None = None, environ: Mapping[str, str] | None = None
) -> Shard:
    """The part this process runs: explicit ``num_parts``/``part_id``, else ``torchrun``'s ``WORLD_SIZE``/``RANK``.

    Raises:
        ValueError: only one of ``num_parts``/``part_id``, an out-of-range part, or explicit parts
            that contradict a ``torchrun`` launch.
    """
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if (num_parts is None) != (part_id is None):
        raise ConfigError(f"--num-parts and --part-id go together, got num_parts={num_parts}, part_id={part_id}")
    if num_parts is not None:
        if world > 1 and (num_parts, part_id) != (world, int(env.get("RANK", "0"))):
            raise ConfigError(
                f"num_parts={num_parts}, part_id={part_id} contradict the torchrun launch "
                f"(WORLD_SIZE={world}, RANK={env.get('RANK')}); give one or the other"
            )
        if num_parts < 1:
            raise ConfigError(f"num_parts must be >= 1, got {num_parts}")
        return Shard(int(part_id), int(num_parts), "explicit" if num_parts > 1 else "single")
    if world > 1:
        return Shard(int(env.get("RANK", "0")), world, "torchrun")
    return Shard()


def wait_for_parts(output_dir: str | Path, shard: Shard, poll_s: float = 2.0, timeout_s: float | None = None) -> bool:
    """Block until every part of ``shard``'s batch has finished (its part manifest says so).

    For ``torchrun``, which stops all workers as soon as one exits non-zero: a part with failed cases
    waits here before exiting with status 1. Returns False on ``timeout_s`` or without a manifest.
    """
    output_dir = Path(output_dir)
    own = read_manifest(output_dir / shard.manifest_name)
    if own is None:
        return False
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        states = [read_manifest(output_dir / part_manifest_name(i, shard.count)) or {} for i in range(shard.count)]
        if all(s.get("status") == "finished" and s.get("inputs_sha256") == own["inputs_sha256"] for s in states):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
