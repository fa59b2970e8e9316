"""Sphinx configuration of the medseg-monai documentation (Markdown pages read by MyST-Parser).

    make docs        # sphinx-build -W --keep-going -b html docs docs/_build/html

Nothing is downloaded at build time: no intersphinx inventories, the alabaster theme that comes
with Sphinx, and autodoc imports the package from this checkout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc imports medseg_monai from this checkout

from medseg_monai import __version__  # noqa: E402

project = "medseg-monai"
author = "medseg-monai contributors"
copyright = "medseg-monai contributors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*.json", "make_*.py", "Thumbs.db", ".DS_Store"]

# MyST: ::: fences, definition lists, and anchors for headings down to ###
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# single backticks in docstrings (RST) read as code, as they do in the Markdown pages
default_role = "literal"

# docstring examples are code: keep their quotes straight
smartquotes = False

# autodoc: the package's docstrings (Google style), types in the parameter descriptions
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = f"medseg-monai {release}"
html_theme_options = {
    "description": "Medical-image segmentation on MONAI",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False


# ---------------------------------------------------------------------------------------------- generated pages
#: pages rendered from the code by a script beside this file; tests/test_docs.py checks the committed copies
GENERATED_PAGES = {
    "configuration": "make_config_reference.py",
    "cli": "make_cli_reference.py",
    "architecture": "make_architecture_picture.py",
}


def _render(script: str) -> str:
    spec = importlib.util.spec_from_file_location(Path(script).stem, DOCS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render()


def _generated_source(app, docname: str, source: list[str]) -> None:
    """Build the generated pages from the code itself, so the site never shows a stale copy."""
    script = GENERATED_PAGES.get(docname)
    if script is not None:
        source[0] = _render(script)


def _reread_generated(app, env, added, changed, removed) -> list[str]:
    """The generated pages follow the code, not their file's time stamp: read them on every build."""
    return [name for name in GENERATED_PAGES if name in env.found_docs]


def setup(app):
    app.connect("source-read", _generated_source)
    app.connect("env-get-outdated", _reread_generated)
    return {"parallel_read_safe": True}
