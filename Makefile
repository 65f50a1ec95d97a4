# The two set-up commands of the README. Each creates .venv when missing,
# installs the project into it (again when pyproject.toml changes), and runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

# Until `rollback demo` lands: the smallest real job. Start the embedded cloud,
# record a release of a throw-away git repository into a temporary store, list
# it, stop the cloud (also when a step fails).
demo: $(STAMP)
	@set -e; tmp=$$(mktemp -d); rb="$(CURDIR)/$(VENV)/bin/rollback --store $$tmp/store"; \
	trap '$$rb cloud stop >/dev/null 2>&1 || true; rm -rf $$tmp' EXIT; \
	eval "$$($$rb cloud start)"; echo "embedded cloud at $$AWS_ENDPOINT_URL"; \
	git init -q $$tmp/iac; cd $$tmp/iac; echo 'name: webapp' > Pulumi.yaml; \
	git add Pulumi.yaml; git -c user.name=demo -c user.email=demo@example.invalid commit -qm 'feat: first stack'; \
	echo 'app build 1' > $$tmp/app.tgz; \
	$$rb release record v1.0.0 --artifact $$tmp/app.tgz --repo $$tmp/iac --color blue; \
	$$rb release mark 1.0.0 --stable --reason 'demo'; \
	$$rb release list; $$rb release verify 1.0.0; $$rb cloud status

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check rollback tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done
