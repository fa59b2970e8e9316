"""Generated documentation stays in step with the code."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _generator(script: str):
    spec = importlib.util.spec_from_file_location(Path(script).stem, DOCS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_up_to_date():
    assert (DOCS / "configuration.md").read_text() == _generator("make_config_reference.py").render(), (
        "run: python docs/make_config_reference.py"
    )


def test_results_page_is_generated_from_the_published_summaries():
    from medseg_monai.recipes import collect_summaries
    from medseg_monai.reporting import render_results

    summaries = collect_summaries([DOCS / "results"])
    assert summaries, "docs/results/ holds no run summaries"
    assert (DOCS / "results.md").read_text() == render_results(summaries), (
        "run: python pipelines/make_results_table.py runs/full"
    )


def test_architecture_picture_is_drawn_from_the_current_import_graph():
    assert (DOCS / "architecture.md").read_text() == _generator("make_architecture_picture.py").render(), (
        "run: python docs/make_architecture_picture.py"
    )


def test_cli_reference_is_up_to_date():
    assert (DOCS / "cli.md").read_text() == _generator("make_cli_reference.py").render(), (
        "run: python docs/make_cli_reference.py"
    )


def test_index_toctree_names_every_page():
    text = (DOCS / "index.md").read_text()
    start = text.index("```{toctree}")
    block = text[start : text.index("```", start + 3)].splitlines()[1:]
    entries = [line.strip() for line in block if line.strip() and not line.strip().startswith(":")]
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index")
    assert sorted(entries) == pages, "every docs/*.md page belongs in the toctree of docs/index.md, and only those"
    assert len(entries) == len(set(entries))
