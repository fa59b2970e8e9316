"""Find image/mask pairs in a dataset folder, split them, and gather inputs for prediction.

Layouts recognised by :func:`discover_pairs`, tried in this order:

1. a MONAI decathlon datalist JSON file (``{"training": [{"image": ..., "label": ...}]}``);
2. MSD / nnU-Net raw: ``imagesTr/NAME[_0000].ext`` + ``labelsTr/NAME.ext``, guided by a
   ``dataset.json`` when there is one; ``NAME_0000``, ``NAME_0001``, ... files are the channels of one case
   (an item whose ``image`` is the list of them, :mod:`~medseg_monai.data.channels`);
3. ``images/NAME.ext`` + ``masks/`` (or ``labels/``) ``NAME[_mask|_segmentation].ext``;
4. a flat folder of ``NAME.ext`` + ``NAME_mask.ext`` (or ``NAME_segmentation.ext``).

Image and mask suffixes may differ (``a.jpg`` + ``a_mask.png``); ``.nii.gz`` counts as one suffix.
Hidden files, non-image files and other folders are ignored.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.data.channels import (
    ChannelCase,
    Source,
    as_source,
    csv_channel_cases,
    dataset_channel_names,
    group_channel_files,
    group_training_channels,
)
from medseg_monai.errors import ConfigError, InputError
from medseg_monai.io.dicom import expand_dicom_inputs, is_dicom_zip
from medseg_monai.io.formats import IMAGE_SUFFIXES, is_dicom_series_dir, split_suffix
from medseg_monai.keys import IMAGE, LABEL, NAME

__all__ = [
    "MASK_SUFFIXES",
    "SUPPORTED_LAYOUTS",
    "collect_inputs",
    "discover_pairs",
    "load_datalist",
    "split_by_group",
    "split_pairs",
]

logger = logging.getLogger(__name__)

#: stem endings that mark a mask beside its image (``NAME_mask.png``)
MASK_SUFFIXES = ("_mask", "_segmentation")
SUPPORTED_LAYOUTS = (
    "a datalist .json file ({'training': [{'image': ..., 'label': ...}]})",
    "imagesTr/NAME[_0000].ext + labelsTr/NAME.ext (MSD / nnU-Net)",
    "images/NAME.ext + masks/ or labels/ NAME[_mask|_segmentation].ext",
    "a flat folder of NAME.ext + NAME_mask.ext (or NAME_segmentation.ext)",
)
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_GLOB_CHARS = frozenset("*?[")
_LIST_SUFFIXES = (".csv", ".txt")


def _names(names: Iterable[str], limit: int = 10) -> str:
    """``a, b, c`` or ``a, ..., j and 4 more``."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _is_image_file(path: Path) -> bool:
    return not path.name.startswith(".") and path.is_file() and split_suffix(path)[1].lower() in IMAGE_SUFFIXES


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image_file(p))


def _by_stem(files: Iterable[Path], root: Path, what: str, key: Callable[[str], str] = lambda s: s) -> dict[str, Path]:
    """Map ``key(stem)`` to file; two files with one key (``a.png`` + ``a.tif``) are an error."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        groups[key(split_suffix(path)[0])].append(path)
    duplicates = {k: v for k, v in groups.items() if len(v) > 1}
    if duplicates:
        detail = "; ".join(f"{k}: {', '.join(p.name for p in v)}" for k, v in sorted(duplicates.items())[:10])
        more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise InputError(f"{root}: several {what} share a case name ({detail}{more})")
    return {k: v[0] for k, v in groups.items()}


def _item(image: Path | Sequence[Path], label: Path, name: str) -> dict[str, Any]:
    """An item; several channel files of one case are a list of images."""
    absolute = (
        [os.path.normpath(p.absolute()) for p in image]
        if isinstance(image, (list, tuple))
        else os.path.normpath(image.absolute())
    )
    return {IMAGE: absolute, LABEL: os.path.normpath(label.absolute()), NAME: name}


def _match(
    root: Path,
    images: Mapping[str, Path],
    masks: Mapping[str, Path],
    candidates: Callable[[str], Sequence[str]],
    allow_unmatched: bool,
) -> list[dict[str, str]]:
    """Pair each image with the one mask among ``candidates(name)``; report the unmatched."""
    items, used, unmatched = [], set(), []
    for name, image in images.items():
        found = [c for c in candidates(name) if c in masks]
        if len(found) > 1:
            raise InputError(f"{root}: case {name} has several masks: {', '.join(masks[c].name for c in found)}")
        if not found:
            unmatched.append(name)
            continue
        used.add(found[0])
        items.append(_item(image, masks[found[0]], name))
    orphans = [masks[m].name for m in masks if m not in used]
    problems = []
    if unmatched:
        problems.append(f"{len(unmatched)} image(s) without a mask: {_names(unmatched)}")
    if orphans:
        problems.append(f"{len(orphans)} mask(s) without an image: {_names(orphans)}")
    if problems and not allow_unmatched:
        raise InputError(f"{root}: " + "; ".join(problems) + " (pass allow_unmatched=True to drop them)")
    if problems:
        logger.warning("%s: dropping %s", root, "; ".join(problems))
    if not items:
        raise InputError(_no_layout(root))
    return sorted(items, key=lambda item: item[NAME])


def load_datalist(path: str | Path, key: str = "training", *, require_label: bool = True) -> list[dict[str, Any]]:
    """Read one list of a MONAI decathlon datalist JSON; paths are resolved against its folder.

    Each item gets a ``name`` (its image's stem) unless it has one. Sorted by name.

    Raises:
        FileNotFoundError: the file, or files it lists, do not exist.
        ValueError: not JSON, ``key`` missing, or items lacking ``image`` (or ``label``).
    """
    from monai.data import load_decathlon_datalist

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist file not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(content, dict) or not isinstance(content.get(key), list):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise InputError(f"{path}: no {key!r} list in the datalist (found: {found})")
    if not content[key]:
        return []
    try:
        raw = load_decathlon_datalist(path, data_list_key=key, base_dir=path.parent.absolute())
    except (TypeError, KeyError, IndexError) as err:
        raise InputError(f"{path}: malformed {key!r} list ({err})") from None
    required = (IMAGE, LABEL) if require_label else (IMAGE,)
    items, missing = [], []
    for index, entry in enumerate(raw):
        lacking = [k for k in required if k not in entry]
        if lacking:
            raise InputError(f"{path}: {key}[{index}] has no {' or '.join(map(repr, lacking))}")
        for k in required:
            files = entry[k] if k == IMAGE and isinstance(entry[k], list) and entry[k] else [entry[k]]
            if not all(isinstance(f, str) for f in files):
                what = "a path or a list of channel paths" if k == IMAGE else "one path"
                raise InputError(f"{path}: {key}[{index}] {k!r} must be {what}")
            missing += [f for f in files if not os.path.exists(f)]
        item = dict(entry)
        image = entry[IMAGE]  # a list: the channel files of one case, named after channel 0 (NAME_0000 -> NAME)
        item[NAME] = str(
            entry.get(NAME) or (as_source(image).name if isinstance(image, list) else split_suffix(image)[0])
        )
        items.append(item)
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} listed file(s) do not exist: {_names(missing)}")
    duplicates = [n for n, count in Counter(item[NAME] for item in items).items() if count > 1]
    if duplicates:
        raise InputError(f"{path}: several {key!r} items share a case name: {_names(duplicates)}")
    return sorted(items, key=lambda item: item[NAME])


def _discover_msd(root: Path, allow_unmatched: bool) -> list[dict[str, str]]:
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not labels_dir.is_dir():
        raise InputError(f"{root}: imagesTr/ has no labelsTr/ beside it")
    meta: dict[str, Any] = {}
    if (root / "dataset.json").is_file():
        try:
            meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(f"{root / 'dataset.json'}: not valid JSON ({err})") from None
    if isinstance(meta.get("training"), list) and meta["training"]:
        return load_datalist(root / "dataset.json", "training")

    ending = meta.get("file_ending")
    if ending:

        def keep(p: Path) -> bool:
            return p.name.endswith(ending) and not p.name.startswith(".") and p.is_file()

        image_files = sorted(p for p in images_dir.iterdir() if keep(p))
        label_files = sorted(p for p in labels_dir.iterdir() if keep(p))
    else:
        image_files, label_files = _image_files(images_dir), _image_files(labels_dir)
    masks = _by_stem(label_files, root, "labels")

    # ``NAME_0000`` is channel 0 of case NAME, unless a label is named ``NAME_0000`` itself
    def case_of(stem: str) -> str:
        found = _CHANNEL.match(stem)
        return found["case"] if found and stem not in masks else stem

    names = dataset_channel_names(root) if meta else None
    grouped = group_training_channels(images_dir, image_files, masks, names)
    if grouped is not None:  # several channel files per case
        rest = [p for p in image_files if not any(p in files for files in grouped.values())]
        images: dict[str, Any] = {**_by_stem(rest, root, "images", key=case_of), **grouped}
        return _match(root, images, masks, lambda name: [name], allow_unmatched)
    images = _by_stem(image_files, root, "images", key=case_of)
    return _match(root, images, masks, lambda name: [name], allow_unmatched)


def _discover_images_masks(root: Path, allow_unmatched: bool) -> list[dict[str, str]]:
    mask_dirs = [root / d for d in ("masks", "labels") if (root / d).is_dir()]
    if not mask_dirs:
        raise InputError(f"{root}: images/ has no masks/ or labels/ beside it")
    if len(mask_dirs) > 1:
        raise InputError(f"{root}: both masks/ and labels/ exist; keep one or pass a datalist .json")
    images = _by_stem(_image_files(root / "images"), root, "images")
    masks = _by_stem(_image_files(mask_dirs[0]), root, "masks")
    return _match(root, images, masks, lambda n: [n] + [n + s for s in MASK_SUFFIXES], allow_unmatched)


def _mask_base(stem: str) -> str | None:
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def _discover_flat(root: Path, allow_unmatched: bool) -> list[dict[str, str]]:
    files = _image_files(root)
    mask_files = [p for p in files if _mask_base(split_suffix(p)[0]) is not None]
    if not mask_files:
        raise InputError(_no_layout(root))
    images = _by_stem([p for p in files if p not in mask_files], root, "images")
    masks = _by_stem(mask_files, root, "masks")
    return _match(root, images, masks, lambda n: [n + s for s in MASK_SUFFIXES], allow_unmatched)


def _no_layout(root: Path) -> str:
    return f"{root}: no image/mask pairs in a supported layout; supported: " + "; ".join(SUPPORTED_LAYOUTS)


def discover_pairs(root: str | Path, *, allow_unmatched: bool = False) -> list[dict[str, str]]:
    """Image/mask pairs of a dataset as ``[{"image": str, "label": str, "name": str}, ...]`` sorted by name
    (``image`` is a list of channel files for cases of several).

    Args:
        root: dataset folder in one of the layouts of this module, or a datalist ``.json`` file.
        allow_unmatched: log and drop images without a mask and masks without an image instead of
            raising (duplicates still raise).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no supported layout or no pairs; unmatched images or masks; several images or
            masks for one case; a multi-channel case lacking a channel file.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset root does not exist")
    if root.is_file():
        if root.suffix.lower() == ".json":
            items = load_datalist(root, "training")
            if not items:
                raise InputError(f"{root}: the 'training' list is empty")
            return items
        raise InputError(f"{root}: a file; expected a dataset folder or a datalist .json file")
    if (root / "imagesTr").is_dir():
        items = _discover_msd(root, allow_unmatched)
    elif (root / "images").is_dir():
        items = _discover_images_masks(root, allow_unmatched)
    else:
        items = _discover_flat(root, allow_unmatched)
    logger.debug("%s: %d image/mask pairs", root, len(items))
    return items


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


def _is_input(path: Path) -> bool:
    """A DICOM-series folder, or a supported image not named ``*_mask``/``*_segmentation``; not hidden."""
    if path.is_dir():
        return not path.name.startswith(".") and is_dicom_series_dir(path)
    return _is_image_file(path) and _mask_base(split_suffix(path)[0]) is None


def _read_list_file(path: Path) -> list[str | ChannelCase]:
    """Entries of a ``.txt`` (one per line, ``#`` comments) or ``.csv`` (column ``image`` or ``path``, or one column
    per channel: ``image_0``, ``image_1``, ...)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".txt":
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    cases = csv_channel_cases(header, rows[1:], path.parent, path)
    if cases is not None:
        return list(cases)
    for column in (IMAGE, "path"):
        if column in header:
            index = header.index(column)
            return [row[index].strip() for row in rows[1:] if len(row) > index and row[index].strip()]
    if all(len(row) == 1 for row in rows):
        return [row[0].strip() for row in rows]
    raise InputError(f"{path}: CSV needs a column named 'image' or 'path'; columns: {rows[0]}")


def _collect_one(
    spec: Any, base: Path | None, missing: list[str], top: bool, listed_in: Path | None = None
) -> list[Source]:
    """The inputs ``spec`` stands for; a path that does not exist goes to ``missing`` (with the list naming it)."""
    if isinstance(spec, ChannelCase) and base is None:  # a case given as such: its own checks name missing channels
        return [spec]
    if isinstance(spec, ChannelCase) or not isinstance(
        spec, (str, os.PathLike)
    ):  # a list's case of several channel files
        case = as_source(spec)
        files = tuple(
            p if base is None or p.is_absolute() else base / p for p in (q.expanduser() for q in case.channels)
        )
        gone = [
            str(p) + (f" (listed in {listed_in})" if listed_in is not None else "") for p in files if not p.exists()
        ]
        missing.extend(gone)
        return [] if gone else [ChannelCase(case.name, files)]
    text = str(spec)
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_dir():
        return (
            [path]
            if is_dicom_series_dir(path)
            else group_channel_files(sorted(p for p in path.iterdir() if _is_input(p)))
        )
    if path.is_file():
        if path.suffix.lower() in _LIST_SUFFIXES:
            if not top:
                raise InputError(f"{path}: list files cannot name other list files")
            entries = _read_list_file(path)
            return [p for entry in entries for p in _collect_one(entry, path.parent, missing, False, path)]
        if split_suffix(path)[1].lower() not in IMAGE_SUFFIXES and not is_dicom_zip(path):
            raise InputError(
                f"{path}: unsupported input; expected an image ({', '.join(IMAGE_SUFFIXES)}), a DICOM "
                "series folder or .zip, a folder, a glob pattern or a .csv/.txt list"
            )
        return [path]
    if _GLOB_CHARS & set(str(path)):
        return group_channel_files([p for p in map(Path, sorted(glob.glob(str(path), recursive=True))) if _is_input(p)])
    missing.append(f"{path} (listed in {listed_in})" if listed_in is not None else str(path))
    return []


def collect_inputs(spec: str | Path | ChannelCase | Sequence[Any], series: str | None = None) -> list[Source]:
    """Images to predict on, in order, without duplicates.

    ``spec`` is an image file; a DICOM series folder (one case); a folder (its image files, not
    recursive, skipping hidden files and ``*_mask``/``*_segmentation`` files, plus DICOM-series
    subfolders); a glob pattern (``"scans/*.nii.gz"``); a ``.txt`` list (one path per line) or
    ``.csv`` list (column ``image`` or ``path``) with paths relative to the list's folder; or a
    sequence of any of these. Several files of one case (:mod:`~medseg_monai.data.channels`) come back as one
    :class:`~medseg_monai.data.channels.ChannelCase`: ``NAME_0000``, ``NAME_0001``, ... files of a folder or glob,
    a CSV row of ``image_0``, ``image_1``, ... columns, or a ``ChannelCase`` or a list of paths in ``spec``.
    A ``.zip`` file named as such is a DICOM series; a DICOM folder or zip of several series gives one input per
    series, or with ``series`` (a SeriesInstanceUID) only that one (:func:`~medseg_monai.io.dicom.expand_dicom_inputs`).

    Raises:
        FileNotFoundError: named paths do not exist (all of them are listed).
        ValueError: nothing to predict on, or an unsupported file.
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)  # a ChannelCase is PathLike
    if not specs:
        raise InputError("no inputs given")
    missing: list[str] = []
    found = [p for s in specs for p in _collect_one(s, None, missing, True)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} input path(s) do not exist: {_names(missing)}")
    unique, seen = [], set()
    for path in found:
        key = tuple(os.path.normcase(os.path.realpath(p)) for p in getattr(path, "channels", (path,)))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    if not unique:
        shown = spec if isinstance(spec, (str, os.PathLike)) else ", ".join(map(str, specs))
        raise InputError(f"{shown}: no images or DICOM series found")
    return expand_dicom_inputs(unique, series)
