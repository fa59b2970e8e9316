"""The inputs to predict on (:func:`collect_inputs`): image files, DICOM series folders and zips, folders, glob
patterns and ``.txt``/``.csv`` lists of them, cases of several channel files, without duplicates."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg_monai.data.channels import ChannelCase, Source, as_source, csv_channel_cases, group_channel_files
from medseg_monai.data.datalist import is_image_file, mask_base, short_list
from medseg_monai.errors import InputError
from medseg_monai.io.dicom import is_dicom_zip
from medseg_monai.io.dicom_discovery import expand_dicom_inputs
from medseg_monai.io.formats import IMAGE_SUFFIXES, is_dicom_series_dir, split_suffix
from medseg_monai.keys import IMAGE

__all__ = ["collect_inputs"]

_GLOB_CHARS = frozenset("*?[")
_LIST_SUFFIXES = (".csv", ".txt")


def _is_input(path: Path) -> bool:
    """A DICOM-series folder, or a supported image not named ``*_mask``/``*_segmentation``; not hidden."""
    if path.is_dir():
        return not path.name.startswith(".") and is_dicom_series_dir(path)
    return is_image_file(path) and mask_base(split_suffix(path)[0]) is None


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
    series, or with ``series`` (a SeriesInstanceUID) only that one
    (:func:`~medseg_monai.io.dicom_discovery.expand_dicom_inputs`).

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
        raise FileNotFoundError(f"{len(missing)} input path(s) do not exist: {short_list(missing)}")
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
