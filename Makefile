# Every target creates .venv when missing and installs the project into it (editable, with dev extras).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.medseg-installed
DOCS_STAMP := $(VENV)/.medseg-docs-installed
PYTEST := $(VPY) -m pytest

.PHONY: install demo lint format test test-slow bench bench-quick docs clean

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(VPY) -m pip install --quiet -e ".[dev,docs]"
	@touch $(DOCS_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medseg demo --out runs/demo

# ruff at 120 columns (pyproject.toml): the formatting is checked, the lint rules must pass
LINTED := medseg_monai tests bench pipelines docs

lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

test: $(STAMP)
	$(PYTEST) -q

test-slow: $(STAMP)
	$(PYTEST) -q -m slow

# benchmarks: ratios against MONAI baselines in one invocation -> bench/results/summary.json and docs/performance.md
bench: $(STAMP)
	$(VPY) bench/predict_vs_monai.py
	$(VPY) bench/library_swaps.py
	$(VPY) bench/train_profile.py
	$(VPY) bench/unetpp_cost.py
	$(VPY) bench/import_cost.py
	$(VPY) bench/report.py
	$(VPY) docs/figures.py

bench-quick: $(STAMP)
	$(VPY) bench/predict_vs_monai.py --quick
	$(VPY) bench/report.py

soak: $(STAMP)
	$(VPY) bench/soak_2d.py

# the HTML site in docs/_build/html (with the docs extras); warnings are errors
docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf runs .pytest_cache
