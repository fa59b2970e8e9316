"""Figures and pages a person opens, from plain data (histories, manifests, summaries) and image files.

- :mod:`~medseg_monai.reporting.render`: the one palette, intensity window and slice choice;
- :mod:`~medseg_monai.reporting.figures`: training curves, image | truth | prediction figures;
- :mod:`~medseg_monai.reporting.qa_page`: the HTML QA page of a prediction batch;
- :mod:`~medseg_monai.reporting.results`: the Markdown results tables of the recipes.

It depends on :mod:`medseg_monai.io` only (to read images), so training and the batch runner can draw their run folder's
figures and pages.
"""

from medseg_monai.reporting.figures import CaseRow, plot_training_curves, save_case_figure
from medseg_monai.reporting.qa_page import case_thumbnail, render_report, write_report
from medseg_monai.reporting.render import PALETTE, colour_table, image_views, overlay, window
from medseg_monai.reporting.results import render_results

__all__ = [
    "PALETTE",
    "CaseRow",
    "case_thumbnail",
    "colour_table",
    "image_views",
    "overlay",
    "plot_training_curves",
    "render_report",
    "render_results",
    "save_case_figure",
    "window",
    "write_report",
]
