"""Figures a person can open: training curves and prediction overlays (PNG, matplotlib Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg_monai.utils import atomic_path

__all__ = ["plot_training_curves", "save_prediction_grid", "display_slice"]

_OVERLAY_COLOURS = np.array(
    [[0, 0, 0], [0.1, 0.8, 0.1], [0.95, 0.15, 0.15], [0.2, 0.4, 1.0], [1.0, 0.8, 0.1], [0.8, 0.2, 0.9], [0.1, 0.9, 0.9]]
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Training loss and validation Dice (mean and per class) against the epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [row["epoch"] for row in history]
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker=".", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("Dice + CE loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    dice_keys = [k for k in (history[-1] if history else {}) if k == "val_mean_dice" or k.startswith("val_dice_")]
    for key in dice_keys:
        points = [(row["epoch"], row[key]) for row in history if key in row and row[key] != "" and not math.isnan(float(row[key]))]
        if points:
            xs, ys = zip(*points)
            ax_dice.plot(xs, ys, marker="o", linewidth=2 if key == "val_mean_dice" else 1, label=key.removeprefix("val_"))
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice")
    ax_dice.set_ylim(0, 1)
    ax_dice.grid(alpha=0.3)
    if dice_keys:
        ax_dice.legend()
    fig.tight_layout()
    return _save(fig, path)


def display_slice(image: np.ndarray, spatial_dims: int, index: int | None = None) -> np.ndarray:
    """A 2D view of an image: the slice itself, or the middle (or ``index``) slice of the last axis.

    Volumes in RAS-like (X, Y, Z) order are shown with Y up (rotated), as viewers display axial slices.
    """
    array = np.asarray(image, dtype=np.float32)
    if spatial_dims == 3:
        z = array.shape[2] // 2 if index is None else index
        array = np.rot90(array[:, :, z, ...] if array.ndim > 3 else array[:, :, z])
    return array


def _normalise(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, (0.5, 99.5))
    return np.clip((image - low) / (high - low + 1e-8), 0, 1)


def overlay(image: np.ndarray, labels: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """RGB picture of a 2D image with a label map blended on top (one colour per label value)."""
    gray = _normalise(image if image.ndim == 2 else image.mean(axis=-1))
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if labels is None:
        return rgb
    values = [v for v in np.unique(labels) if v != 0]
    for rank, value in enumerate(values, start=1):
        colour = _OVERLAY_COLOURS[1 + (rank - 1) % (len(_OVERLAY_COLOURS) - 1)]
        where = labels == value
        rgb[where] = (1 - alpha) * rgb[where] + alpha * colour
    return rgb


def save_prediction_grid(
    cases: Sequence[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]],
    path: str | Path,
    spatial_dims: int,
    title: str | None = None,
) -> Path:
    """One row per case: image, truth overlay, prediction overlay.

    Args:
        cases: ``(name, image, truth or None, prediction)`` arrays in reader order, ``(H, W[, C])`` or ``(X, Y, Z)``.
        spatial_dims: 2 or 3 (3D cases show their middle axial slice through the truth, or the volume).
    """
    plt = _pyplot()
    rows = max(len(cases), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, (name, image, truth, pred) in enumerate(cases):
        index = None
        if spatial_dims == 3:
            reference = truth if truth is not None and np.any(truth) else pred
            if np.any(reference):
                zs = np.nonzero(np.any(reference, axis=(0, 1)))[0]
                index = int(zs[len(zs) // 2])
        img2d = display_slice(image, spatial_dims, index)
        panels = [
            ("image", overlay(img2d, None)),
            ("truth", overlay(img2d, display_slice(truth, spatial_dims, index)) if truth is not None else None),
            ("prediction", overlay(img2d, display_slice(pred, spatial_dims, index))),
        ]
        for col, (label, picture) in enumerate(panels):
            ax = axes[row, col]
            ax.axis("off")
            if picture is not None:
                ax.imshow(picture)
                ax.set_title(f"{name}: {label}" if col == 0 else label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
