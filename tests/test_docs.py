"""Generated documentation stays in step with the code."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("make_config_reference", DOCS / "make_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "configuration.md").read_text() == module.render(), "run: python docs/make_config_reference.py"


def test_results_page_is_generated_from_the_published_summaries():
    from medseg_monai.recipes import collect_summaries
    from medseg_monai.reporting import render_results

    summaries = collect_summaries([DOCS / "results"])
    assert summaries, "docs/results/ holds no run summaries"
    assert (DOCS / "results.md").read_text() == render_results(summaries), "run: python pipelines/make_results_table.py runs/full"
