"""How every figure and page shows an image with a mask: one palette, one intensity window, one slice choice.

- **palette**: :data:`PALETTE`, the colour of the 1st, 2nd, ... foreground label of a model, the same in
  every panel, figure and page (:func:`colour_table`);
- **intensity window**: the 0.5 to 99.5 percentiles of the image (of every fourth voxel per axis for
  volumes), scaled to 0..255 (:func:`window`); RGB images are shown as they are;
- **slice choice**: volumes are reoriented to the closest RAS axes and cut through the middle of the
  reference mask's bounding box (the truth where there is one, else the prediction; the volume centre
  when both are empty), shown as viewers show them: axial and coronal radiologically (patient's right
  on the left), anterior up (axial) and superior up (coronal, sagittal), each panel at its physical
  aspect ratio (:func:`volume_views`). 2D images are shown as stored.

Overlays blend each label's colour at :data:`ALPHA` over the windowed image (:func:`overlay`).
``skimage.color.label2rgb`` was measured as the alternative and loses here: it assigns colours by the
rank of the labels present in each image (a panel without class 1 shows class 2 in class 1's colour)
and turns RGB images gray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA",
    "PALETTE",
    "View",
    "colour_table",
    "image_views",
    "loaded_views",
    "overlay",
    "ras",
    "volume_views",
    "window",
]

#: overlay colour of the 1st, 2nd, ... foreground label of the model
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
ALPHA = 0.45


@dataclass(frozen=True)
class View:
    """One 2D panel: ``image`` windowed to ``uint8`` (``(H, W)`` or RGB ``(H, W, 3)``), ``masks`` cut the same
    way, and the physical size of a pixel along rows and columns (mm; 1 for 2D images)."""

    name: str
    image: np.ndarray
    masks: tuple[np.ndarray, ...]
    row_mm: float = 1.0
    col_mm: float = 1.0


def window(image: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """Window to the 0.5-99.5 percentiles of ``sample`` (default ``image``) and scale to 0..255."""
    ref = (image if sample is None else sample).astype(np.float32, copy=False)
    low, high = np.percentile(ref, (0.5, 99.5)) if ref.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    return (np.clip((image.astype(np.float32) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def colour_table(values: Sequence[int], present: np.ndarray | Sequence[int] = ()) -> dict[int, tuple[int, int, int]]:
    """Colour of each foreground value: ``values`` (the model's labels) in order, then any other value ``present``."""
    order = [int(v) for v in values] + sorted(int(v) for v in np.asarray(present).ravel() if int(v) not in values)
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(order)}


def overlay(
    gray_or_rgb: np.ndarray, mask: np.ndarray, colours: Mapping[int, tuple[int, int, int]], background: int = 0
) -> np.ndarray:
    """``uint8`` RGB picture of a windowed 2D image with each label of ``mask`` blended in its colour."""
    rgb = np.repeat(gray_or_rgb[..., None], 3, axis=-1) if gray_or_rgb.ndim == 2 else gray_or_rgb[..., :3]
    out = rgb.astype(np.float32)
    for value, colour in colours.items():
        hit = mask == value
        if value != background and hit.any():
            out[hit] = (1 - ALPHA) * out[hit] + ALPHA * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array reoriented to the closest RAS axes, and its voxel size per RAS axis."""
    import nibabel as nib

    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    zooms = np.empty(3)
    zooms[ornt[:, 0].astype(int)] = spacing
    return nib.orientations.apply_orientation(array, ornt), zooms


def _centre(masks: Sequence[np.ndarray], background: int, shape: Sequence[int]) -> list[int]:
    for mask in masks:
        fg = mask != background
        if fg.any():
            return [
                int(np.mean(np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != k)))[[0, -1]]))
                for k in range(3)
            ]
    return [s // 2 for s in shape]


def volume_views(image: np.ndarray, masks: Sequence[np.ndarray], affine: np.ndarray, background: int = 0) -> list[View]:
    """Axial, coronal and sagittal views of a volume ``(X, Y, Z)`` and its masks, through the middle of the
    first non-empty mask's bounding box (see the module docstring)."""
    image, zooms = ras(image, affine)
    masks = [ras(mask, affine)[0] for mask in masks]
    gray = window(image, image[::4, ::4, ::4])
    x, y, z = _centre(masks, background, image.shape)
    zx, zy, zz = zooms
    cuts = (  # (name, display array builder, row spacing, column spacing)
        ("axial", lambda a: a[:, :, z].T[::-1, ::-1], zy, zx),  # anterior up, patient's right on the left
        ("coronal", lambda a: a[:, y, :].T[::-1, ::-1], zz, zx),  # superior up
        ("sagittal", lambda a: a[x, :, :].T[::-1, ::-1], zz, zy),  # superior up, anterior on the left
    )
    return [View(name, cut(gray), tuple(cut(m) for m in masks), rows, cols) for name, cut, rows, cols in cuts]


def image_views(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    spatial_shape: Sequence[int],
    affine: np.ndarray | None,
    background: int = 0,
) -> list[View]:
    """The views of one image with its masks: three for a volume, the image itself for 2D.

    ``image`` is as a reader gives it (``(H, W[, C])`` or ``(X, Y, Z[, C])``); a volume's extra channels
    show their first one, a 2D image keeps its RGB. ``affine`` (the reader's RAS index-to-world matrix)
    is needed for volumes.
    """
    image = np.asarray(image)
    if image.ndim > len(spatial_shape):  # channel-last volume or RGB image
        image = image if image.ndim == 3 and len(spatial_shape) == 2 else image[..., 0]
    if len(spatial_shape) == 3:
        if affine is None:
            raise ValueError("volume views need the image's affine")
        return volume_views(image, masks, affine, background)
    shown = window(image) if image.dtype != np.uint8 else image
    return [View("image", shown, tuple(np.asarray(m) for m in masks))]


def loaded_views(image, masks: Sequence[np.ndarray], background: int = 0) -> list[View]:
    """:func:`image_views` of an image as ``medseg_monai.io.load_image`` returns it (spatial shape and affine from
    its metadata)."""
    spatial = tuple(int(s) for s in np.asarray(image.meta.get("spatial_shape", np.asarray(image).shape)).ravel())
    affine = np.asarray(image.meta["affine"]) if len(spatial) == 3 else None
    return image_views(np.asarray(image), masks, spatial, affine, background)
