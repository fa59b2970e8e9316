"""Synthetic DICOM series written with pydicom: MR Image Storage slices with full patient geometry, in any file
order."""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MRSeries", "oblique_direction", "write_localizer", "write_mr_series", "zip_folder"]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_ROOT = "1.2.826.0.1.3680043.8.498."  # the pydicom UID root used by pydicom.uid.generate_uid


def oblique_direction(degrees_z: float = 17.0, degrees_x: float = 9.0) -> np.ndarray:
    """An oblique 3x3 LPS direction (columns: the x, y, z index axes), rotated about z then x."""
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    return rx @ rz


@dataclasses.dataclass(frozen=True)
class MRSeries:
    """What :func:`write_mr_series` wrote: the folder, its UIDs, the geometry and the file of each slice (in slice
    order)."""

    folder: Path
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    files: tuple[Path, ...]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    volume: np.ndarray


def _uid(seed: int, part: int) -> str:
    return f"{_ROOT}{seed}.{part}"


def _set_identity(
    ds, *, seed: int, study_uid: str, series_uid: str, series_number: int, description: str, frame_uid: str
) -> None:
    """The modality, patient, study, series and frame-of-reference tags of one MR slice."""
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = f"SYN{seed:03d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC{seed:03d}"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.Manufacturer = "Synthetic"
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""


def write_mr_series(
    folder: Path,
    volume: np.ndarray,
    *,
    spacing: Sequence[float] = (0.9, 0.8, 3.0),
    origin: Sequence[float] = (-40.0, -30.0, 12.0),
    direction: np.ndarray | None = None,
    seed: int = 1,
    series_number: int = 3,
    description: str = "T1 AX",
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    shuffle: bool = False,
    prefix: str = "IM",
) -> MRSeries:
    """Write ``volume`` (``(X, Y, Z)``, uint16) as one MR series, a slice per file, with pydicom.

    ``direction`` (LPS, columns are the index axes; default :func:`oblique_direction`) gives
    ImageOrientationPatient and, with ``spacing`` and ``origin``, each slice's ImagePositionPatient.
    With ``shuffle`` the file names (and instance numbers) follow a seeded random order, not the slices'.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    direction = oblique_direction() if direction is None else np.asarray(direction, dtype=float)
    volume = np.asarray(volume).astype(np.uint16)
    nx, ny, nz = volume.shape
    study_uid = study_uid or _uid(seed, 1)
    series_uid = _uid(seed, 100 + series_number)
    frame_uid = frame_of_reference_uid or _uid(seed, 3)
    order = np.random.default_rng(seed).permutation(nz) if shuffle else np.arange(nz)
    files = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = f"{series_uid}.{k + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        path = folder / f"{prefix}{int(order[k]):04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        _set_identity(
            ds,
            seed=seed,
            study_uid=study_uid,
            series_uid=series_uid,
            series_number=series_number,
            description=description,
            frame_uid=frame_uid,
        )
        ds.InstanceNumber = int(order[k]) + 1
        position = np.asarray(origin, dtype=float) + direction[:, 2] * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing (along y), column spacing (along x)
        ds.SliceThickness = f"{spacing[2]:.6g}"
        ds.SpacingBetweenSlices = f"{spacing[2]:.6g}"
        ds.SliceLocation = f"{float(np.dot(direction[:, 2], position)):.6f}"
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].T).astype("<u2").tobytes()
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        files.append(path)
    return MRSeries(
        folder,
        study_uid,
        series_uid,
        frame_uid,
        tuple(files),
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in origin),
        direction,
        volume,
    )


def write_localizer(folder: Path, series: MRSeries, *, same_series: bool = True, name: str = "LOC0001.dcm") -> Path:
    """A localizer slice beside ``series``: ImageType LOCALIZER, orthogonal orientation, in the same series by
    default."""
    import pydicom

    ds = pydicom.dcmread(str(series.files[0]))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.ImagePositionPatient = ["-100", "0", "100"]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = series.series_uid + ".999"
    ds.InstanceNumber = 999
    if not same_series:
        ds.SeriesInstanceUID = series.series_uid + ".9"
    path = folder / name
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def zip_folder(folder: Path, target: Path, *, nested: str = "") -> Path:
    """A zip of every file of ``folder`` (under ``nested/`` inside the archive when given)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(
                    path, str(Path(nested) / path.relative_to(folder)) if nested else str(path.relative_to(folder))
                )
    return target
