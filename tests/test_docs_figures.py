"""Measured figures quoted in the README and the documentation are the ones the result files hold.

A figure a benchmark or a recipe measured carries its source beside it (``2.97 GiB<!-- fig: summary:KEY -->``,
see docs/figures.py); the figure must be the value of that key rounded to the printed decimals. A figure that
reads as a measurement (GiB, ``1.3x``, ``0.9462``, ``14.8 ms``, ``0.98 %``) without a source fails too, and the
tables of docs/performance.md must be those bench/report.py writes from bench/results/summary.json.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def figures():
    return _load(REPO / "docs" / "figures.py", "docs_figures")


@pytest.fixture(scope="module")
def results(figures):
    return figures.load_results()


def test_every_quoted_figure_is_what_its_result_file_holds(figures, results):
    wrong = [str(f) for page in figures.pages() for f in figures.referenced_figures(page, results) if f.problem]
    assert not wrong, "quoted figures that the results do not hold (python docs/figures.py rewrites them):\n" + (
        "\n".join(wrong)
    )


def test_no_page_quotes_a_measured_looking_figure_without_its_source(figures):
    unsourced = [item for page in figures.pages() for item in figures.unreferenced_figures(page)]
    assert not unsourced, (
        "figures that read as measurements but name no result (add <!-- fig: SOURCE:KEY -->, "
        "<!-- not measured: why -->, or remove them):\n" + "\n".join(unsourced)
    )


def test_the_pages_people_read_first_quote_their_figures_from_the_results(figures, results):
    """The check is not vacuous: the README and the performance page do quote measured figures."""
    for name, least in (("README.md", 10), ("docs/performance.md", 15)):
        quoted = figures.referenced_figures(REPO / name, results)
        assert len(quoted) >= least, f"{name}: only {len(quoted)} referenced figures"
    checked = {page.relative_to(REPO).as_posix() for page in figures.pages()}
    assert {"README.md", "bench/README.md", "docs/performance.md", "docs/glossary.md"} <= checked
    assert not checked & {"docs/cli.md", "docs/configuration.md", "docs/results.md"}  # generated, tested elsewhere


def test_the_benchmark_tables_are_those_bench_report_writes_from_the_summary(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    report = _load(REPO / "bench" / "report.py", "bench_report_for_docs")
    summary = json.loads(report.common.SUMMARY.read_text(encoding="utf-8"))
    text = report.DOC.read_text(encoding="utf-8")
    makers = {"summary": report.table, "pipelines": report.pipelines, "train": report.training, "scale": report.scale}
    for block in report.BLOCKS:
        start, end = f"<!-- bench-{block}:start -->", f"<!-- bench-{block}:end -->"
        committed = text.split(start, 1)[1].split(end, 1)[0].strip("\n")
        assert committed == makers[block](summary), f"docs/performance.md bench-{block}: run python bench/report.py"


# ------------------------------------------------------------------------------- the check itself catches errors


def _first_figure(figures, results, page: Path):
    text = page.read_text(encoding="utf-8")
    figure = figures.referenced_figures(page, results, text)[0]
    return text, figure


def _changed(number: str) -> str:
    """The same number printed with the same decimals, its last digit changed."""
    last = int(number[-1])
    return number[:-1] + str((last + 1) % 10)


@pytest.mark.parametrize("page", ["README.md", "docs/performance.md", "docs/clinical.md", "docs/reliability.md"])
def test_a_changed_figure_fails_the_check_and_rewriting_restores_it(figures, results, page):
    path = REPO / page
    text, figure = _first_figure(figures, results, path)
    marker = f"<!-- fig: {figure.reference} -->"
    position = text.index(marker)
    start = text.rindex(figure.printed, 0, position)
    wrong = text[:start] + _changed(figure.printed) + text[start + len(figure.printed) :]
    problems = [f for f in figures.referenced_figures(path, results, wrong) if f.problem]
    assert len(problems) == 1 and problems[0].reference == figure.reference
    assert f"the results hold {figure.printed}" in problems[0].problem
    assert figures.rewrite(wrong, results) == text
    assert figures.rewrite(text, results) == text  # the committed pages are what the results print


def test_a_reference_to_a_missing_key_or_file_fails(figures, results):
    page = REPO / "README.md"
    text = "peaks at 2.97 GiB<!-- fig: summary:predict.no_such_key --> and 0.5<!-- fig: no_such_file:value -->\n"
    problems = [f.problem for f in figures.referenced_figures(page, results, text)]
    assert problems[0] == "summary.json has no predict.no_such_key"
    assert problems[1].startswith("no result file no_such_file.json")
    orphan = "a comment far from its number 2.97 and some words here<!-- fig: summary:predict.rss_ratio -->\n"
    assert [f.problem for f in figures.referenced_figures(page, results, orphan)] == [
        "no figure right before the comment"
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "a 512x512x400 CT peaks at **2.1 GiB** resident, against 8.2 GiB with MONAI and 10.8 GiB for the recipe",
        "| MSD hippocampus (3D) | mean Dice | 0.866 | | | 0.87 |",
        "compiled about 1.2x per step, 1.42 s against 1.67 s",
        "memory grew by 0.98 % and per-case time from 14.8 ms",
    ],
)
def test_a_measured_figure_without_a_source_is_found(figures, sentence):
    found = figures.unreferenced_figures(REPO / "README.md", sentence + "\n")
    assert found, sentence
    assert all(re.match(r"README\.md:1: ", item) for item in found)


def test_settings_code_and_sourced_figures_are_not_taken_for_measurements(figures):
    text = (
        "`--overlap 0.25 --learning-rate 0.002` and 512 x 512 x 400 voxels at 1.5 x 1.5 x 2 mm, 96x96x64 patches\n"
        "```bash\nmedseg predict --overlap 0.125 # 2.1 GiB\n```\n"
        "peaks at 2.97 GiB<!-- fig: summary:details.predict.pipelines.medseg_matched.peak_rss_gib -->\n"
        "about 2 GiB<!-- not measured: 5 float32 copies -->\n"
    )
    assert figures.unreferenced_figures(REPO / "README.md", text) == []
