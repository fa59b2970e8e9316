"""Figures and pages a person opens: training curves, overlays, the best/worst figure, the HTML QA page,
the results tables."""

from medseg_monai.reporting.figures import plot_training_curves, save_prediction_grid
from medseg_monai.reporting.qa_page import render_report, write_report

__all__ = ["plot_training_curves", "render_report", "save_prediction_grid", "write_report"]
