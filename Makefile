# The two set-up commands of the README. Each creates .venv when missing,
# installs the project into it (again when pyproject.toml changes), and runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-floors lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

# The demo: release v1.0.0 on blue, deploy v2.0.0 to green, green fails, roll back
# to last-stable; all on the embedded cloud, which it starts and stops.
demo: $(STAMP)
	$(VENV)/bin/rollback demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

# The declared minimum of every runtime dependency, installed together into a
# scratch venv, runs the tests that use them (.ci/floors.py; needs PyPI).
test-floors:
	$(PYTHON) .ci/floors.py

lint: $(STAMP)
	$(VENV)/bin/ruff check rollback tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done
