"""Measured figures in the prose of the documentation, and the result files they come from.

A figure that a benchmark or a recipe measured is followed, on the same line, by an HTML comment naming
where it comes from; GitHub and Sphinx do not show the comment::

    peaks at 2.97 GiB<!-- fig: summary:details.predict.pipelines.medseg_matched.peak_rss_gib -->

- ``summary``, ``library_swaps``, ``soak_2d``: ``bench/results/NAME.json``, written by the benchmarks;
- ``msd_hippocampus.unet`` and the other ``RECIPE.NETWORK`` names: ``docs/results/NAME.json``, the summaries
  of the real-data recipes (the ones ``docs/results.md`` is generated from);
- after the colon, the dotted path of the value inside the file (list items by their index, ``rows.2.ratio``);
- an optional ``*N`` at the end scales the value: ``*100`` prints a fraction as a percentage, ``*1000``
  seconds as milliseconds.

The number just before the comment (only a unit such as `` GiB``, ``x`` or `` %`` may stand between them)
must be the value rounded to as many decimals as it is printed with. A number that only looks like a
measurement (a bound, an arithmetic estimate) says so instead: ``about 2 GiB<!-- not measured: ... -->``.
The tables between ``<!-- bench-NAME:start -->`` and ``<!-- bench-NAME:end -->`` in ``docs/performance.md``
are written whole by ``bench/report.py`` and are not read here.

    python docs/figures.py           # rewrite every referenced figure from the result files (after make bench)
    python docs/figures.py --check   # list the figures that differ from their results and the unreferenced ones

``tests/test_docs_figures.py`` runs the check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
RESULT_FOLDERS = (REPO / "bench" / "results", DOCS / "results")

#: pages read by people; the generated ones (cli, configuration, architecture, results) are checked elsewhere
#: (tests/test_docs.py) and the changelog records earlier states
GENERATED = {"cli.md", "configuration.md", "architecture.md", "results.md", "changelog.md"}

NUMBER = r"(?<![\w.])(?P<number>\d+(?:\.\d+)?)"
#: what may stand between a figure and its comment: a unit, no digit, no table cell or markup boundary
UNIT = r"(?P<unit>[^\d<>|`\n]{0,12}?)"
MARKER = re.compile(NUMBER + UNIT + r"<!--\s*(?P<kind>fig|not measured):\s*(?P<ref>[^>]*?)\s*-->")
ANY_MARKER = re.compile(r"<!--\s*(?:fig|not measured):[^>]*?-->")
REFERENCE = re.compile(r"^(?P<source>[\w.-]+):(?P<key>[\w.-]+)(?:\s*\*\s*(?P<scale>\d+(?:\.\d+)?))?$")
#: figures that read as measurements: memory, speed ratios (``1.3x``), fractional seconds and percentages,
#: and fractions of three or more decimals (Dice, agreement)
MEASURED_LOOKING = re.compile(
    r"(?<![\w.])(?:"
    r"\d+(?:\.\d+)?\s?(?:GiB|MiB|KiB|GB|MB)\b"
    r"|\d+(?:\.\d+)?x(?![\w])"
    r"|\d+\.\d+\s?(?:s|ms|min)\b"
    r"|\d+\.\d+\s?%"
    r"|0\.\d{3,}(?![\d])"
    r")"
)
GENERATED_BLOCK = re.compile(r"<!-- bench-(?P<name>[\w-]+):start -->.*?<!-- bench-(?P=name):end -->", re.S)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`(?:[^`\n]|\n(?![ \t]*\n))+`")  # a code span may run over a line break


def pages() -> list[Path]:
    """The pages whose figures are checked: README.md, bench/README.md and the written docs/*.md."""
    written = sorted(p for p in DOCS.glob("*.md") if p.name not in GENERATED)
    return [REPO / "README.md", REPO / "bench" / "README.md", *written]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One referenced figure: where it is printed, what it references, and the value it should print."""

    page: Path
    line: int
    printed: str
    reference: str
    expected: str | None  # None: the reference does not resolve
    problem: str | None  # why it does not resolve, or why the printed figure is wrong

    def __str__(self) -> str:
        where = f"{self.page.relative_to(REPO)}:{self.line}"
        return f"{where}: {self.printed} <- {self.reference}: {self.problem}"


def load_results() -> dict[str, Any]:
    """Every result file by name (``summary``, ``msd_hippocampus.unet``, ...)."""
    results: dict[str, Any] = {}
    for folder in RESULT_FOLDERS:
        for path in sorted(folder.glob("*.json")):
            if path.stem in results:
                raise SystemExit(f"{path}: a result file of this name exists in two folders")
            results[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return results


_MISSING = object()


def _walk(value: Any, parts: list[str]) -> Any:
    """The item at the dotted path ``parts``; a key may itself hold dots (``probability_maps.mask.rss_ratio``)."""
    if not parts:
        return value
    if isinstance(value, list):
        head = parts[0]
        return _walk(value[int(head)], parts[1:]) if head.isdigit() and int(head) < len(value) else _MISSING
    if isinstance(value, dict):
        for end in range(len(parts), 0, -1):  # the longest key first
            key = ".".join(parts[:end])
            if key in value:
                found = _walk(value[key], parts[end:])
                if found is not _MISSING:
                    return found
    return _MISSING


def lookup(results: dict[str, Any], reference: str) -> tuple[float | None, str | None]:
    """The (scaled) value a reference names, or why it names none."""
    match = REFERENCE.match(reference)
    if not match:
        return None, "not SOURCE:KEY[*SCALE]"
    source, key, scale = match["source"], match["key"], match["scale"]
    if source not in results:
        return None, f"no result file {source}.json in bench/results/ or docs/results/"
    value = _walk(results[source], key.split("."))
    if value is _MISSING:
        return None, f"{source}.json has no {key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{source}:{key} is {value!r}, not a number"
    return float(value) * (float(scale) if scale else 1.0), None


def formatted(value: float, printed: str) -> str:
    """``value`` with as many decimals as ``printed`` has."""
    decimals = len(printed.split(".", 1)[1]) if "." in printed else 0
    return f"{value:.{decimals}f}"


def _blanked(text: str, pattern: re.Pattern) -> str:
    """``text`` with every match of ``pattern`` replaced by spaces (newlines kept, so lines and offsets hold)."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def prose(text: str) -> str:
    """``text`` with code (fences, inline spans) and the tables bench/report.py writes blanked out."""
    for pattern in (GENERATED_BLOCK, FENCE, INLINE_CODE):
        text = _blanked(text, pattern)
    return text


def referenced_figures(page: Path, results: dict[str, Any], text: str | None = None) -> list[Figure]:
    """Every ``fig:`` comment of a page's prose with the figure before it, checked against the result files."""
    text = page.read_text(encoding="utf-8") if text is None else text
    figures = []
    for line_number, line in enumerate(prose(text).splitlines(), start=1):
        attached = {m.start("kind") for m in MARKER.finditer(line)}
        for comment in ANY_MARKER.finditer(line):
            if not any(comment.start() <= start < comment.end() for start in attached):
                figures.append(
                    Figure(page, line_number, "?", comment.group(), None, "no figure right before the comment")
                )
        for match in MARKER.finditer(line):
            if match["kind"] != "fig":
                continue
            value, problem = lookup(results, match["ref"])
            expected = None if value is None else formatted(value, match["number"])
            if expected is not None and expected != match["number"]:
                problem = f"the results hold {expected}"
            figures.append(Figure(page, line_number, match["number"], match["ref"], expected, problem))
    return figures


def unreferenced_figures(page: Path, text: str | None = None) -> list[str]:
    """Figures that read as measurements but carry no comment: ``PAGE:LINE: figure``."""
    text = page.read_text(encoding="utf-8") if text is None else text
    found = []
    for line_number, line in enumerate(prose(text).splitlines(), start=1):
        covered = [(m.start(), m.end()) for m in MARKER.finditer(line)]
        for match in MEASURED_LOOKING.finditer(line):
            if not any(start <= match.start() < end for start, end in covered):
                found.append(f"{page.relative_to(REPO) if page.is_absolute() else page}:{line_number}: {match.group()}")
    return found


def rewrite(text: str, results: dict[str, Any]) -> str:
    """``text`` with every referenced figure of its prose printed from its result file, at its printed precision."""
    pieces, done = [], 0
    for match in MARKER.finditer(prose(text)):
        value, _ = lookup(results, match["ref"]) if match["kind"] == "fig" else (None, None)
        if value is None:
            continue
        pieces += [text[done : match.start("number")], formatted(value, match["number"])]
        done = match.end("number")
    return "".join(pieces) + text[done:]


def problems() -> list[str]:
    """Every wrong or unresolvable referenced figure and every unreferenced measured-looking one."""
    results = load_results()
    found = []
    for page in pages():
        found += [str(f) for f in referenced_figures(page, results) if f.problem]
        found += [
            f"{item}: a measured-looking figure without <!-- fig: SOURCE:KEY -->" for item in unreferenced_figures(page)
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list the problems (exit 1 when there are any)")
    args = parser.parse_args(argv)
    if not args.check:
        results = load_results()
        for page in pages():
            text = page.read_text(encoding="utf-8")
            new = rewrite(text, results)
            if new != text:
                page.write_text(new, encoding="utf-8")
                print(f"rewrote the figures of {page.relative_to(REPO)}")
    found = problems()
    for item in found:
        print(item)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
