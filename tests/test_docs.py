"""Generated documentation stays in step with the code."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("make_config_reference", DOCS / "make_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "configuration.md").read_text() == module.render(), "run: python docs/make_config_reference.py"
