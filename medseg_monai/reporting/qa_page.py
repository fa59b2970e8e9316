"""Self-contained HTML QA page of a prediction batch, built from its ``predict_manifest.json``.

One row per case: an overlay thumbnail (three orthogonal slices through the middle of the predicted
foreground for volumes, the volume centre when the mask is empty; the whole image for 2D), label
volumes (mL) or pixel counts, connected-component counts, and flags (failed, empty mask,
unusually many components). Thumbnails are PNGs embedded as base64, so the page is one file.

Volumes are shown in the RAS frame the way viewers show them: axial and coronal radiologically
(patient's right on the left), anterior up (axial) and superior up (coronal, sagittal), with each
panel scaled to its physical aspect ratio.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medseg_monai.utils import atomic_write_text

__all__ = ["PALETTE", "case_thumbnail", "render_report", "write_report"]

logger = logging.getLogger(__name__)

#: overlay colour of the 1st, 2nd, ... foreground label of the model
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)
_ALPHA = 0.45
_PANEL_PX = 180


def _to_uint8(image: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """Window to the 0.5-99.5 percentiles of ``sample`` (default ``image``) and scale to 0..255."""
    ref = (image if sample is None else sample).astype(np.float32, copy=False)
    low, high = np.percentile(ref, (0.5, 99.5)) if ref.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    return (np.clip((image.astype(np.float32) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def _colour_table(values: Sequence[int], present: np.ndarray) -> dict[int, tuple[int, int, int]]:
    order = [int(v) for v in values] + sorted(int(v) for v in present if int(v) not in values)
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(order)}


def _overlay(gray_or_rgb: np.ndarray, mask: np.ndarray, colours: Mapping[int, tuple[int, int, int]], background: int) -> np.ndarray:
    rgb = np.repeat(gray_or_rgb[..., None], 3, axis=-1) if gray_or_rgb.ndim == 2 else gray_or_rgb[..., :3]
    out = rgb.astype(np.float32)
    for value, colour in colours.items():
        hit = mask == value
        if value != background and hit.any():
            out[hit] = (1 - _ALPHA) * out[hit] + _ALPHA * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def _resize(panel: np.ndarray, row_mm: float, col_mm: float, height: int = _PANEL_PX):
    from PIL import Image

    rows, cols = panel.shape[:2]
    scale = height / max(rows * row_mm, 1e-6)
    size = (max(1, round(cols * col_mm * scale)), max(1, round(rows * row_mm * scale)))
    if size[0] > 2 * height:  # keep very long panels reasonable
        size = (2 * height, max(1, round(size[1] * 2 * height / size[0])))
    return Image.fromarray(np.ascontiguousarray(panel)).resize(size, Image.Resampling.BILINEAR)


def _ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array reoriented to the closest RAS axes, and its voxel size per RAS axis."""
    import nibabel as nib

    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    zooms = np.empty(3)
    zooms[ornt[:, 0].astype(int)] = spacing
    return nib.orientations.apply_orientation(array, ornt), zooms


def _volume_panels(image: np.ndarray, mask: np.ndarray, affine: np.ndarray, colours, background: int) -> list:
    image, zooms = _ras(image, affine)
    mask, _ = _ras(mask, affine)
    gray = _to_uint8(image, image[::4, ::4, ::4])
    fg = mask != background
    if fg.any():
        centre = [int(np.mean(np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != k)))[[0, -1]])) for k in range(3)]
    else:
        centre = [s // 2 for s in mask.shape]
    x, y, z = centre
    zx, zy, zz = zooms
    views = (  # (display array builder, row spacing, column spacing)
        (lambda a: a[:, :, z].T[::-1, ::-1], zy, zx),  # axial: anterior up, patient's right on the left
        (lambda a: a[:, y, :].T[::-1, ::-1], zz, zx),  # coronal: superior up
        (lambda a: a[x, :, :].T[::-1, ::-1], zz, zy),  # sagittal: superior up, anterior on the left
    )
    return [_resize(_overlay(view(gray), view(mask), colours, background), rows, cols) for view, rows, cols in views]


def case_thumbnail(source: str | Path, mask_path: str | Path, label_values: Sequence[int] = (), background: int = 0) -> bytes:
    """PNG bytes of the mask over its source: three orthogonal slices for volumes, the image for 2D."""
    from PIL import Image

    from medseg_monai.io import load_image

    image_t, mask_t = load_image(source), load_image(mask_path)
    image, mask = np.asarray(image_t), np.asarray(mask_t)
    colours = _colour_table([v for v in label_values if v != background], np.unique(mask))
    spatial = tuple(int(s) for s in np.asarray(image_t.meta.get("spatial_shape", image.shape)).ravel())
    if image.ndim > len(spatial):  # channel-last volume or RGB image
        image = image if image.ndim == 3 and len(spatial) == 2 else image[..., 0]
    if len(spatial) == 3:
        panels = _volume_panels(image, mask, np.asarray(image_t.meta["affine"]), colours, background)
    else:
        shown = _to_uint8(image) if image.dtype != np.uint8 else image
        panels = [_resize(_overlay(shown, mask, colours, background), 1.0, 1.0, height=min(2 * _PANEL_PX, max(image.shape[0], _PANEL_PX)))]
    gap = 4
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, max(p.height for p in panels)), (0, 0, 0))
    left = 0
    for panel in panels:
        canvas.paste(panel, (left, 0))
        left += panel.width + gap
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- page
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}.meta{color:#555;font-size:13px;margin:2px 0}
table{border-collapse:collapse;margin-top:16px;font-size:13px}
th,td{border:1px solid #ccc;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f0f0f0;position:sticky;top:0}
tr.failed td{background:#fde2e2}tr.flagged td{background:#fff6d6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.flag{display:inline-block;padding:1px 6px;border-radius:8px;background:#e8a400;color:#fff;margin:1px;font-size:12px}
.flag.failed{background:#c62828}.flag.empty{background:#6d4c41}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:middle}
.summary span{margin-right:18px}.err{color:#b00020;max-width:420px;word-break:break-word}
img{display:block;image-rendering:auto}.path{color:#666;font-size:12px;word-break:break-all}
"""


def _label_cell(labels: Mapping[str, Mapping[str, Any]], key: str, colours: Mapping[int, tuple[int, int, int]]) -> str:
    rows = []
    for value, entry in labels.items():
        colour = colours.get(int(value), (128, 128, 128))
        amount = entry.get(key)
        text = "-" if amount is None else (f"{amount:.2f}" if isinstance(amount, float) else f"{amount:,}")
        rows.append(f'<span class="swatch" style="background:rgb{colour}"></span>{html.escape(str(entry.get("name", value)))}: {text}')
    return "<br>".join(rows) or "-"


def _row(record: Mapping[str, Any], thumb: str, colours, three_d: bool) -> str:
    flags = record.get("flags") or []
    css = "failed" if record["status"] == "failed" else ("flagged" if flags else "")
    name = Path(record["input"]).name
    out = Path(record["output"]).name if record.get("output") else "-"
    cells = [
        f'<td class="num">{record["index"] + 1}</td>',
        f'<td><b>{html.escape(name)}</b><div class="path">{html.escape(record["input"])}</div><div class="path">&rarr; {html.escape(out)}</div></td>',
        f'<td>{html.escape(record["status"])}</td>',
        f"<td>{thumb}</td>",
    ]
    if record["status"] == "failed":
        cells.append(f'<td colspan="4" class="err">{html.escape(record.get("error") or "")}</td>')
    else:
        labels = record.get("labels") or {}
        shape = "&times;".join(str(s) for s in record.get("shape") or []) or "-"
        spacing = "&times;".join(f"{s:g}" for s in record.get("spacing") or []) or "-"
        cells += [
            f'<td>{shape}<div class="path">{spacing}{" mm" if three_d else ""}</div></td>',
            f"<td>{_label_cell(labels, 'volume_ml' if three_d else 'count', colours)}</td>",
            f"<td>{_label_cell(labels, 'components', colours)}</td>",
            f'<td class="num">{record.get("seconds") or 0:.1f}</td>',
        ]
    cells.append("<td>" + "".join(f'<span class="flag {html.escape(f)}">{html.escape(f.replace("_", " "))}</span>' for f in flags) + "</td>")
    return f'<tr class="{css}">' + "".join(cells) + "</tr>"


def render_report(manifest: Mapping[str, Any], thumbnails: bool = True) -> str:
    """The HTML page of a manifest (``predict_manifest.json`` contents)."""
    model = manifest.get("model", {})
    values = [int(v) for v in model.get("label_values", [])]
    names = list(model.get("label_names", []))
    background = values[0] if values else 0
    three_d = model.get("spatial_dims", 3) == 3
    cases = manifest.get("cases", [])
    present = sorted({int(v) for r in cases for v in (r.get("labels") or {})} - set(values))
    colours = _colour_table([v for v in values if v != background], np.asarray(present, dtype=np.int64))
    rows = []
    for record in cases:
        thumb = "-"
        if thumbnails and record["status"] != "failed" and record.get("output"):
            try:
                png = case_thumbnail(record["input"], record["output"], values, background)
                thumb = f'<img alt="overlay of {html.escape(Path(record["input"]).name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            except (OSError, ValueError, RuntimeError) as err:
                logger.warning("%s: no thumbnail (%s)", record["input"], err)
                thumb = f'<span class="err">no thumbnail: {html.escape(str(err))}</span>'
        rows.append(_row(record, thumb, colours, three_d))
    summary = manifest.get("summary", {})
    legend = " ".join(
        f'<span class="swatch" style="background:rgb{colours[v]}"></span>{html.escape(names[i] if i < len(names) else str(v))} ({v})'
        for i, v in enumerate(values) if v != background
    )
    device = manifest.get("device", {})
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    amount = "volume (mL)" if three_d else "pixels"
    header = (
        f"<h1>Prediction QA report</h1>"
        f'<p class="meta">{html.escape(manifest.get("output_dir", ""))} &middot; generated {datetime.now(timezone.utc).isoformat(timespec="seconds")}</p>'
        f'<p class="meta">model {html.escape(str(model.get("network")))} &middot; weights {html.escape(str(model.get("weights_sha256", ""))[:12])} '
        f'&middot; config {html.escape(str(model.get("config_sha256", ""))[:12])} &middot; checkpoint {html.escape(str(model.get("checkpoint")))}</p>'
        f'<p class="meta">device {html.escape(str(device.get("network")))} &middot; {html.escape(versions)}</p>'
        f'<p class="summary"><span><b>{summary.get("cases_total", len(cases))}</b> cases</span><span>{summary.get("written", 0)} written</span>'
        f'<span>{summary.get("skipped", 0)} skipped</span><span>{summary.get("failed", 0)} failed</span>'
        f'<span>{summary.get("flagged", 0)} flagged</span><span>many components: &gt; {manifest.get("many_components_threshold", "?")} per class</span></p>'
        f'<p class="meta">labels: {legend}</p>'
    )
    table = (
        "<table><thead><tr><th>#</th><th>case</th><th>status</th><th>overlay</th><th>shape / spacing</th>"
        f"<th>{amount}</th><th>components</th><th>time (s)</th><th>flags</th></tr></thead><tbody>"
        + "\n".join(rows) + "</tbody></table>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Prediction QA report</title>'
        f"<style>{_CSS}</style></head><body>{header}{table}</body></html>\n"
    )


def write_report(manifest: Mapping[str, Any] | str | Path, path: str | Path, thumbnails: bool = True) -> Path:
    """Write the QA page of ``manifest`` (a dict or a ``predict_manifest.json`` path) to ``path`` atomically."""
    if not isinstance(manifest, Mapping):
        manifest = json.loads(Path(manifest).read_text())
    path = Path(path)
    atomic_write_text(path, render_report(manifest, thumbnails))
    logger.info("wrote QA report %s", path)
    return path
