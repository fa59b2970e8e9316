"""Self-contained HTML QA page of a prediction batch, built from its ``predict_manifest.json``.

One row per case: an overlay thumbnail (the views of :mod:`medseg_monai.reporting.render`: three
orthogonal radiological slices through the middle of the predicted foreground for volumes, the whole
image for 2D), label volumes (mL) or pixel counts, connected-component counts, and flags (failed,
empty mask, unusually many components). Thumbnails are PNGs embedded as base64, so the page is one
file; its layout is the template ``templates/qa_report.html``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from medseg_monai.reporting.render import colour_table, loaded_views, overlay
from medseg_monai.utils import atomic_write_text

__all__ = ["case_thumbnail", "render_report", "write_report"]

logger = logging.getLogger(__name__)

_PANEL_PX = 180
_TEMPLATE = Template(
    resources.files("medseg_monai.reporting").joinpath("templates/qa_report.html").read_text(encoding="utf-8")
)


def _resize(panel: np.ndarray, row_mm: float, col_mm: float, height: int = _PANEL_PX):
    from PIL import Image

    rows, cols = panel.shape[:2]
    scale = height / max(rows * row_mm, 1e-6)
    size = (max(1, round(cols * col_mm * scale)), max(1, round(rows * row_mm * scale)))
    if size[0] > 2 * height:  # keep very long panels reasonable
        size = (2 * height, max(1, round(size[1] * 2 * height / size[0])))
    return Image.fromarray(np.ascontiguousarray(panel)).resize(size, Image.Resampling.BILINEAR)


def case_thumbnail(
    source: str | Path, mask_path: str | Path, label_values: Sequence[int] = (), background: int = 0
) -> bytes:
    """PNG bytes of the mask over its source: three orthogonal slices for volumes, the image for 2D."""
    from PIL import Image

    from medseg_monai.io import load_image

    image_t, mask_t = load_image(source), load_image(mask_path, role="mask")
    mask = np.asarray(mask_t)
    colours = colour_table([v for v in label_values if v != background], np.unique(mask))
    views = loaded_views(image_t, [mask], background)
    height = _PANEL_PX if len(views) == 3 else min(2 * _PANEL_PX, max(views[0].image.shape[0], _PANEL_PX))
    panels = [
        _resize(overlay(v.image, v.masks[0], colours, background), v.row_mm, v.col_mm, height=height) for v in views
    ]
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
def _label_cell(labels: Mapping[str, Mapping[str, Any]], key: str, colours: Mapping[int, tuple[int, int, int]]) -> str:
    rows = []
    for value, entry in labels.items():
        colour = colours.get(int(value), (128, 128, 128))
        amount = entry.get(key)
        text = "-" if amount is None else (f"{amount:.2f}" if isinstance(amount, float) else f"{amount:,}")
        rows.append(
            f'<span class="swatch" style="background:rgb{colour}"></span>'
            f"{html.escape(str(entry.get('name', value)))}: {text}"
        )
    return "<br>".join(rows) or "-"


def _row(record: Mapping[str, Any], thumb: str, colours, three_d: bool) -> str:
    flags = record.get("flags") or []
    css = "failed" if record["status"] == "failed" else ("flagged" if flags else "")
    name = Path(record["input"]).name
    out = Path(record["output"]).name if record.get("output") else "-"
    cells = [
        f'<td class="num">{record["index"] + 1}</td>',
        f'<td><b>{html.escape(name)}</b><div class="path">{html.escape(record["input"])}</div>'
        f'<div class="path">&rarr; {html.escape(out)}</div></td>',
        f"<td>{html.escape(record['status'])}</td>",
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
    entropy = (record.get("entropy") or {}).get("mean_foreground")
    notes = {
        "input_warning": "; ".join(record.get("warnings") or []),
        "high_uncertainty": f"mean foreground entropy {entropy:.3f} nats" if entropy is not None else "",
    }
    cells.append(
        "<td>"
        + "".join(
            f'<span class="flag {html.escape(f)}"'
            + (f' title="{html.escape(notes[f], quote=True)}"' if notes.get(f) else "")
            + f">{html.escape(f.replace('_', ' '))}</span>"
            for f in flags
        )
        + "</td>"
    )
    return f'<tr class="{css}">' + "".join(cells) + "</tr>"


def _inside(path: str | Path, root: Path | None) -> bool:
    """Whether ``path`` lies in ``root``: a manifest's paths are followed only inside the folder it describes."""
    return root is not None and Path(path).resolve().is_relative_to(root)


def render_report(manifest: Mapping[str, Any], thumbnails: bool = True) -> str:
    """The HTML page of a manifest (``predict_manifest.json`` contents)."""
    model = manifest.get("model", {})
    values = [int(v) for v in model.get("label_values", [])]
    names = list(model.get("label_names", []))
    background = values[0] if values else 0
    three_d = model.get("image_dims", model.get("spatial_dims", 3)) == 3
    cases = manifest.get("cases", [])
    present = sorted({int(v) for r in cases for v in (r.get("labels") or {})} - set(values))
    colours = colour_table([v for v in values if v != background], np.asarray(present, dtype=np.int64))
    root = Path(manifest["output_dir"]).resolve() if manifest.get("output_dir") else None
    rows = []
    for record in cases:
        thumb = "-"
        if thumbnails and record["status"] != "failed" and record.get("output") and not _inside(record["output"], root):
            logger.warning(
                "%s: no thumbnail (the mask is not inside the batch's output folder %s)", record["output"], root
            )
        elif thumbnails and record["status"] != "failed" and record.get("output"):
            try:
                png = case_thumbnail(record["input"], record["output"], values, background)
                thumb = (
                    f'<img alt="overlay of {html.escape(Path(record["input"]).name)}" '
                    f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                )
            except (OSError, ValueError, RuntimeError) as err:
                logger.warning("%s: no thumbnail (%s)", record["input"], err)
                thumb = f'<span class="err">no thumbnail: {html.escape(str(err))}</span>'
        rows.append(_row(record, thumb, colours, three_d))
    summary = manifest.get("summary", {})
    legend = " ".join(
        f'<span class="swatch" style="background:rgb{colours[v]}"></span>'
        f"{html.escape(names[i] if i < len(names) else str(v))} ({v})"
        for i, v in enumerate(values)
        if v != background
    )
    device = manifest.get("device", {})
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    return _TEMPLATE.substitute(
        output_dir=html.escape(manifest.get("output_dir", "")),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        network=html.escape(str(model.get("network"))),
        weights=html.escape(str(model.get("weights_sha256", ""))[:12]),
        config=html.escape(str(model.get("config_sha256", ""))[:12]),
        checkpoint=html.escape(str(model.get("checkpoint"))),
        device=html.escape(str(device.get("network"))),
        versions=html.escape(versions),
        cases_total=summary.get("cases_total", len(cases)),
        written=summary.get("written", 0),
        skipped=summary.get("skipped", 0),
        failed=summary.get("failed", 0),
        flagged=summary.get("flagged", 0),
        many_components=manifest.get("many_components_threshold", "?"),
        legend=legend,
        amount="volume (mL)" if three_d else "pixels",
        rows="\n".join(rows),
    )


def write_report(manifest: Mapping[str, Any] | str | Path, path: str | Path, thumbnails: bool = True) -> Path:
    """Write the QA page of ``manifest`` (a dict or a ``predict_manifest.json`` path) to ``path`` atomically."""
    if not isinstance(manifest, Mapping):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    path = Path(path)
    atomic_write_text(path, render_report(manifest, thumbnails))
    logger.info("wrote QA report %s", path)
    return path
