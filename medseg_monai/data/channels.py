"""Cases of several image files, one per channel, stacked into one ``(C, *spatial)`` input.

Three ways to give a case several channels:

- the nnU-Net layout: ``NAME_0000.ext``, ``NAME_0001.ext``, ... (channel ``k`` is the file ending in ``_k``
  as four digits), named by ``channel_names`` (``{"0": "T2", "1": "ADC"}``) in ``dataset.json``;
- a datalist whose ``image`` is a list of files (JSON), or a prediction list (CSV) with columns
  ``image_0``, ``image_1``, ...;
- one 4D file per case (the MSD layout, ``modality`` in ``dataset.json``): not a :class:`ChannelCase`, the
  reader gives the channels.

:class:`ChannelCase` is how a prediction input of several files travels from
:func:`~medseg_monai.data.collect_inputs` to :meth:`~medseg_monai.inference.Predictor.prepare` and
:meth:`~medseg_monai.inference.Predictor.save_mask`. Channel 0 gives the geometry of the mask.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.errors import ConfigError, InputError
from medseg_monai.io import mask_filename, split_suffix

__all__ = [
    "CHANNEL_STEM",
    "ChannelCase",
    "Source",
    "as_source",
    "channel_label",
    "check_channels",
    "check_image_channels",
    "csv_channel_cases",
    "dataset_channel_names",
    "describe_channels",
    "geometry_source",
    "group_channel_files",
    "group_training_channels",
    "loader_input",
    "resolve_channel_names",
    "source_files",
    "source_label",
    "source_mask_filename",
]

logger = logging.getLogger(__name__)

#: a file stem ``NAME_0001``: channel 1 of case ``NAME`` in the nnU-Net layout
CHANNEL_STEM = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclasses.dataclass(frozen=True)
class ChannelCase:
    """One case stored as one image file per channel, in channel order.

    ``channels`` may name files that do not exist (a gap in ``NAME_0000``, ``NAME_0002``):
    :func:`check_channels` reports them before anything is read. Wherever a single path is expected
    (a format, a voxel grid, ``os.fspath``, ``str``), the case stands for its channel 0 file.
    """

    name: str
    channels: tuple[Path, ...]

    def __post_init__(self) -> None:
        if not self.channels:
            raise InputError(f"{self.name}: a case needs at least one channel file")
        object.__setattr__(self, "channels", tuple(Path(p) for p in self.channels))

    def __fspath__(self) -> str:
        return str(self.channels[0])

    def __str__(self) -> str:
        return str(self.channels[0])

    @property
    def parent(self) -> Path:
        """The folder of channel 0."""
        return self.channels[0].parent

    @property
    def label(self) -> str:
        """``FOLDER/NAME``: how messages name the case."""
        return str(self.parent / self.name)

    def expected_file(self, index: int) -> str | None:
        """File name channel ``index`` has in the nnU-Net layout (``NAME_0001.nii.gz``); ``None`` for other names."""
        stem, suffix = split_suffix(self.channels[0])
        found = CHANNEL_STEM.match(stem)
        if not found or found["case"] != self.name:
            return None
        return f"{self.name}_{index:04d}{suffix}"


#: one prediction input: an image file (or DICOM series folder), or a case of several channel files
Source = Path | ChannelCase


def as_source(value: Any) -> Source:
    """A path, a :class:`ChannelCase`, or a sequence of channel files (a case named after channel 0) as a
    :data:`Source`."""
    if isinstance(value, ChannelCase):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    files = tuple(Path(p) for p in value)
    if not files:
        raise InputError("an empty list of channel files")
    stem = split_suffix(files[0])[0]
    found = CHANNEL_STEM.match(stem)
    return ChannelCase(found["case"] if found else stem, files)


def source_files(source: Source) -> tuple[Path, ...]:
    """The files of a source, channel 0 first."""
    return source.channels if isinstance(source, ChannelCase) else (Path(source),)


def geometry_source(source: Source) -> Path:
    """The file whose voxel grid and format the mask takes: channel 0 of a case."""
    return source_files(source)[0]


def source_label(source: Source) -> str:
    """How messages name a source: the file, or ``FOLDER/NAME`` of a case."""
    return source.label if isinstance(source, ChannelCase) else str(source)


def loader_input(source: Source) -> str | list[str]:
    """What ``LoadImaged`` reads: one file name, or the channel files it stacks as channels."""
    if isinstance(source, ChannelCase):
        return [str(p) for p in source.channels]
    return str(source)


def source_mask_filename(source: Source, output_format: str | None = None) -> str:
    """File name of the mask of ``source``: a case's name with the mask suffix of its channel 0."""
    name = mask_filename(geometry_source(source), output_format)
    if not isinstance(source, ChannelCase):
        return name
    return source.name + split_suffix(name)[1]


def channel_label(index: int, names: Sequence[str] | None = None) -> str:
    """``channel 1 (ADC)``; ``channel 1`` without a name."""
    name = names[index] if names is not None and index < len(names) else None
    return f"channel {index}" + (f" ({name})" if name and name != f"channel_{index}" else "")


def describe_channels(count: int, names: Sequence[str] | None = None) -> str:
    """``2 channel(s): 0 (T2), 1 (ADC)``."""
    shown = [channel_label(k, names).removeprefix("channel ") for k in range(count)]
    return f"{count} channel(s): " + ", ".join(shown)


def check_channels(
    source: Source, count: int | None, names: Sequence[str] | None = None, expected_by: str = "the model takes"
) -> None:
    """Refuse a case whose channel files are missing, or that has another number of channels than ``count``.

    Raises:
        InputError: one line naming the case and the missing channel (index, name and expected file).
    """
    if not isinstance(source, ChannelCase) or count is None:
        return
    for index in range(count):
        path = source.channels[index] if index < len(source.channels) else None
        if path is not None and path.exists():
            continue
        expected = path.name if path is not None else source.expected_file(index)
        what = f"{expected} not found" if expected else f"{expected_by} {describe_channels(count, names)}"
        raise InputError(f"{source.label}: {channel_label(index, names)} missing: {what}")
    if len(source.channels) > count:
        extra = ", ".join(p.name for p in source.channels[count:])
        raise InputError(
            f"{source.label}: {len(source.channels)} channel files, but {expected_by} "
            f"{describe_channels(count, names)} (extra: {extra})"
        )


def check_image_channels(source: Source, loaded: int, count: int | None, names: Sequence[str] | None) -> None:
    """Refuse a single image of fewer channels than a model of named channels (one file per channel) takes.

    Raises:
        InputError: naming the file and the first missing channel (index and name).
    """
    if isinstance(source, ChannelCase) or names is None or count is None or loaded >= count:
        return
    stem = split_suffix(geometry_source(source))[0]
    raise InputError(
        f"{source}: {channel_label(loaded, names)} missing: the model takes {describe_channels(count, names)}, "
        f"one file each ({stem}_0000, {stem}_0001, ... in one folder), but this is one image of {loaded} channel(s)"
    )


def _channel_groups(files: Iterable[Path]) -> dict[tuple[Path, str], dict[int, Path]]:
    groups: dict[tuple[Path, str], dict[int, Path]] = defaultdict(dict)
    for path in files:
        found = CHANNEL_STEM.match(split_suffix(path)[0]) if not path.is_dir() else None
        if found:
            groups[(path.parent, found["case"])][int(found["channel"])] = path
    return groups


def _case(folder: Path, name: str, by_index: Mapping[int, Path]) -> ChannelCase:
    """The case of the channel files found; gaps become the names the missing files would have."""
    suffix = split_suffix(by_index[min(by_index)])[1]
    return ChannelCase(
        name, tuple(by_index.get(k, folder / f"{name}_{k:04d}{suffix}") for k in range(max(by_index) + 1))
    )


def group_channel_files(files: Sequence[Path]) -> list[Source]:
    """Prediction inputs with the nnU-Net channel files of each case grouped into one :class:`ChannelCase`.

    Files named ``NAME_XXXX`` are grouped by folder and ``NAME`` when at least one case of the listing has
    several of them; otherwise (a single-channel ``imagesTs`` folder) the files stay as they are. A case
    keeps the place of its first file.
    """
    groups = _channel_groups(files)
    if not any(len(found) > 1 for found in groups.values()):
        return list(files)
    out: list[Source] = []
    done: set[tuple[Path, str]] = set()
    for path in files:
        found = CHANNEL_STEM.match(split_suffix(path)[0]) if not path.is_dir() else None
        if not found:
            out.append(path)
            continue
        key = (path.parent, found["case"])
        if key not in done:
            done.add(key)
            out.append(_case(key[0], key[1], groups[key]))
    return out


def _names_from(meta: Mapping[str, Any], path: Path) -> tuple[str, ...] | None:
    """``channel_names`` (nnU-Net v2) or ``modality`` (MSD) of a dataset.json, ordered by channel index.

    A malformed ``channel_names`` is an error; a malformed ``modality`` (an older, informal field) is ignored.
    """
    for key in ("channel_names", "modality"):
        value = meta.get(key)
        if value is None:
            continue
        try:
            by_index = {int(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}
        except ValueError:
            by_index = {}
        if by_index and sorted(by_index) == list(range(len(by_index))):
            return tuple(by_index[k] for k in range(len(by_index)))
        if key == "modality":
            logger.warning("%s: 'modality' %r does not map channel indices 0, 1, ... to names; ignored", path, value)
            return None
        raise InputError(
            f"{path}: {key!r} must map the channel indices 0, 1, ... to names, e.g. "
            f'{{"0": "T2", "1": "ADC"}}, got {value!r}'
        )
    return None


def dataset_channel_names(root: str | Path | None) -> tuple[str, ...] | None:
    """Channel names a dataset declares: ``channel_names``/``modality`` of ``ROOT/dataset.json``, or of ``root``
    itself when it is a datalist ``.json``; ``None`` when there are none."""
    if not root:
        return None
    root = Path(root)
    path = root if root.is_file() else root / "dataset.json"
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    return _names_from(meta, path) if isinstance(meta, dict) else None


def group_training_channels(
    images_dir: Path, files: Sequence[Path], labels: Iterable[str], names: Sequence[str] | None
) -> dict[str, tuple[Path, ...]] | None:
    """The channel files of each case of an nnU-Net ``imagesTr`` folder, checked; ``None`` for one channel per case.

    ``labels`` are the label stems (``NAME_0001`` with a label of that name is a case of its own); ``names``
    the channel names of ``dataset.json``, whose length is the channel count (else the largest count found).

    Raises:
        InputError: a case lacking a channel file, or with one more than the dataset declares.
    """
    labels = set(labels)
    groups = _channel_groups(p for p in files if split_suffix(p)[0] not in labels)
    count = len(names) if names else max((max(found) + 1 for found in groups.values()), default=1)
    if count <= 1 and all(len(found) == 1 for found in groups.values()):
        return None
    cases: dict[str, tuple[Path, ...]] = {}
    for (folder, name), found in sorted(groups.items(), key=lambda item: item[0][1]):
        case = _case(folder, name, found)
        check_channels(case, count, names, "the dataset declares" if names else "other cases have")
        cases[name] = case.channels
    return cases


def resolve_channel_names(
    count: int, given: Sequence[str] | None, declared: Sequence[str] | None, separate_files: bool
) -> tuple[str, ...] | None:
    """``data.channel_names`` for ``count`` channels: ``given`` (the setting), else ``declared`` (dataset.json), else
    ``channel_0, channel_1, ...`` when the channels come from separate files; ``None`` for one image's channels
    (RGB)."""
    for names, where in ((given, "data.channel_names"), (declared, "the dataset's channel_names")):
        if names is not None:
            if len(names) != count:
                raise ConfigError(f"{where} names {len(names)} channel(s) {list(names)}, but the images have {count}")
            return tuple(str(n) for n in names)
    return tuple(f"channel_{k}" for k in range(count)) if separate_files else None


#: a CSV column of channel ``k`` in a prediction list: ``image_0``, ``image_1``, ... (or ``image_0000``)
_CHANNEL_COLUMN = re.compile(r"^image_?(\d+)$")


def csv_channel_cases(
    header: Sequence[str], rows: Sequence[Sequence[str]], base: Path, where: Path
) -> list[ChannelCase] | None:
    """The cases of a CSV list with one column per channel (``image_0``, ``image_1``, ..., optional ``name``), paths
    relative to ``base``; ``None`` when the header has no such columns."""
    columns = {int(m[1]): i for i, cell in enumerate(header) if (m := _CHANNEL_COLUMN.match(cell.strip().lower()))}
    if not columns:
        return None
    if sorted(columns) != list(range(len(columns))):
        raise InputError(f"{where}: channel columns must be image_0 .. image_{len(columns) - 1}, got {sorted(columns)}")
    name_at = (
        [cell.strip().lower() for cell in header].index("name")
        if "name" in [c.strip().lower() for c in header]
        else None
    )
    cases = []
    for number, row in enumerate(rows, start=2):
        cells = [row[columns[k]].strip() if columns[k] < len(row) else "" for k in range(len(columns))]
        if not any(cells):
            continue
        if not all(cells):
            empty = next(k for k, cell in enumerate(cells) if not cell)
            raise InputError(f"{where}: line {number}: channel {empty} (column image_{empty}) is empty")
        files = tuple(Path(c).expanduser() if Path(c).expanduser().is_absolute() else base / c for c in cells)
        case = as_source(files)
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        cases.append(ChannelCase(name or case.name, case.channels))
    return cases
