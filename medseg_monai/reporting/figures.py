"""Figures a person can open (PNG, matplotlib Agg): training curves, and image | truth | prediction rows.

The case rows show what the QA page shows (:mod:`medseg_monai.reporting.render`): the same palette,
intensity window and radiological axial slice, chosen through the middle of the truth (else the
prediction), so a case looks the same in every figure and page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg_monai.reporting.render import colour_table, loaded_views, overlay
from medseg_monai.utils import atomic_path

__all__ = ["CaseRow", "plot_training_curves", "save_case_figure"]


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
        points = [
            (row["epoch"], row[key])
            for row in history
            if key in row and row[key] != "" and not math.isnan(float(row[key]))
        ]
        if points:
            xs, ys = zip(*points)
            ax_dice.plot(
                xs, ys, marker="o", linewidth=2 if key == "val_mean_dice" else 1, label=key.removeprefix("val_")
            )
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice")
    ax_dice.set_ylim(0, 1)
    ax_dice.grid(alpha=0.3)
    if dice_keys:
        ax_dice.legend()
    fig.tight_layout()
    return _save(fig, path)


@dataclass(frozen=True)
class CaseRow:
    """One row of a case figure: its title, and the files of the image, its truth mask (or ``None``) and the
    prediction."""

    title: str
    image: str | Path
    truth: str | Path | None
    prediction: str | Path


def save_case_figure(
    rows: Sequence[CaseRow], path: str | Path, label_values: Sequence[int], title: str | None = None
) -> Path:
    """Image | truth | prediction, one row per case: the axial view of a volume, the image itself in 2D.

    Args:
        rows: the cases; masks hold label values (``label_values``, plus background 0).
        path: the PNG to write (atomically).
        label_values: foreground values in palette order (the model's labels, background excluded); other
            values present in a mask take the next colours, as on the QA page.
        title: figure title.
    """
    from medseg_monai.io import as_label_map, load_image, spatial_dims_of

    plt = _pyplot()
    fig, axes = plt.subplots(max(len(rows), 1), 3, figsize=(9, 3 * max(len(rows), 1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        dims = spatial_dims_of(row.image)
        pred = as_label_map(load_image(row.prediction, role="mask"), dims)
        masks = [pred] if row.truth is None else [as_label_map(load_image(row.truth, role="mask"), dims), pred]
        colours = colour_table(label_values, np.unique(np.concatenate([np.unique(m) for m in masks])))
        view = loaded_views(load_image(row.image), masks)[0]
        truth_view = None if row.truth is None else view.masks[0]
        panels = [
            (row.title, view.image if view.image.ndim == 3 else np.repeat(view.image[..., None], 3, axis=-1)),
            ("truth", None if truth_view is None else overlay(view.image, truth_view, colours)),
            ("prediction", overlay(view.image, view.masks[-1], colours)),
        ]
        for c, (label, picture) in enumerate(panels):
            if picture is not None:
                axes[r, c].imshow(picture, aspect=view.row_mm / view.col_mm)
                axes[r, c].set_title(label, fontsize=9)
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
