# Every target creates .venv when missing and installs the project into it (editable, with dev extras).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.medseg-installed
PYTEST := $(VPY) -m pytest

.PHONY: install demo test test-slow clean

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medseg demo --out runs/demo

test: $(STAMP)
	$(PYTEST) -q

test-slow: $(STAMP)
	$(PYTEST) -q -m slow

clean:
	rm -rf runs .pytest_cache
