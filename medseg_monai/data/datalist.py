"""Find the image/mask pairs of a dataset: a datalist JSON file, or a folder in one of the layouts below.

Layouts recognised by :func:`discover_pairs`, tried in this order:

1. a MONAI decathlon datalist JSON file (``{"training": [{"image": ..., "label": ...}]}``);
2. MSD / nnU-Net raw: ``imagesTr/NAME[_0000].ext`` + ``labelsTr/NAME.ext``, guided by a
   ``dataset.json`` when there is one; ``NAME_0000``, ``NAME_0001``, ... files are the channels of one case
   (an item whose ``image`` is the list of them, :mod:`~medseg_monai.data.channels`);
3. ``images/NAME.ext`` + ``masks/`` (or ``labels/``) ``NAME[_mask|_segmentation].ext``;
4. a flat folder of ``NAME.ext`` + ``NAME_mask.ext`` (or ``NAME_segmentation.ext``).

Image and mask suffixes may differ (``a.jpg`` + ``a_mask.png``); ``.nii.gz`` counts as one suffix.
Hidden files, non-image files and other folders are ignored. Splits of the pairs are in
:mod:`medseg_monai.data.splits`, the inputs to predict on in :mod:`medseg_monai.data.inputs`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg_monai.data.channels import as_source, dataset_channel_names, group_training_channels
from medseg_monai.errors import InputError
from medseg_monai.io.formats import IMAGE_SUFFIXES, split_suffix
from medseg_monai.keys import IMAGE, LABEL, NAME

__all__ = [
    "MASK_SUFFIXES",
    "SUPPORTED_LAYOUTS",
    "discover_pairs",
    "is_image_file",
    "load_datalist",
    "mask_base",
    "short_list",
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


def short_list(names: Iterable[str], limit: int = 10) -> str:
    """``a, b, c`` or ``a, ..., j and 4 more``."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def is_image_file(path: Path) -> bool:
    """A file of a supported image suffix, not hidden."""
    return not path.name.startswith(".") and path.is_file() and split_suffix(path)[1].lower() in IMAGE_SUFFIXES


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


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
        problems.append(f"{len(unmatched)} image(s) without a mask: {short_list(unmatched)}")
    if orphans:
        problems.append(f"{len(orphans)} mask(s) without an image: {short_list(orphans)}")
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
        raise FileNotFoundError(f"{path}: {len(missing)} listed file(s) do not exist: {short_list(missing)}")
    duplicates = [n for n, count in Counter(item[NAME] for item in items).items() if count > 1]
    if duplicates:
        raise InputError(f"{path}: several {key!r} items share a case name: {short_list(duplicates)}")
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


def mask_base(stem: str) -> str | None:
    """``NAME`` of a mask stem ``NAME_mask`` or ``NAME_segmentation``; ``None`` for other stems."""
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def _discover_flat(root: Path, allow_unmatched: bool) -> list[dict[str, str]]:
    files = _image_files(root)
    mask_files = [p for p in files if mask_base(split_suffix(p)[0]) is not None]
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
