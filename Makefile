# The two set-up commands of the README. Each creates .venv when missing,
# installs the project into it (again when pyproject.toml changes), and runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-floors lint bench postgres

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

# The demo: release v1.0.0 on blue, deploy v2.0.0 to green, green fails, roll back
# to last-stable; all on the embedded cloud, which it starts and stops.
demo: $(STAMP)
	$(VENV)/bin/rollback demo

# Two workers, each test file on one of them (module fixtures stay shared); -n 0 runs serially.
test: $(STAMP) postgres
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# PostgreSQL's server for the tests marked `postgres` (real rows behind the embedded
# cloud's RDS): Debian's package, installed when missing and this user may install it.
postgres:
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } || \
	  echo "PostgreSQL is not installed: the tests marked postgres are skipped (NOT RUN)." >&2

# The declared minimum of every runtime dependency, installed together into a
# scratch venv, runs the tests that use them (.ci/floors.py; needs PyPI).
test-floors:
	$(PYTHON) .ci/floors.py

lint: $(STAMP)
	$(VENV)/bin/ruff check rollback tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done
