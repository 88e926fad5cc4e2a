# The two commands a fresh machine needs: `make run` (serve on :5000) and `make test`.
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
# apt-get needs root: CI runners are not, and have passwordless sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run migrate test lint unit tools fuzz bench clean

$(BIN)/cme: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]'
	touch $@

$(TOOLS)/.installed: requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q -r requirements/tools.txt
	command -v shellcheck >/dev/null || (apt-get update -q && apt-get install -y -q shellcheck)
	# promtool, for the tests of every PromQL expression in infra/ (tests/infra).
	command -v promtool >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q prometheus)
	touch $@

tools: $(TOOLS)/.installed

migrate: $(BIN)/cme
	$(BIN)/cme migrate

run: migrate
	$(BIN)/cme serve

lint: $(BIN)/cme
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint tools
	$(BIN)/pytest

# schemathesis against a live cme on PostgreSQL, with and without credentials (see README).
fuzz: $(BIN)/cme
	$(BIN)/pytest tests/integration/test_fuzz.py

unit: $(BIN)/cme tools
	$(BIN)/pytest tests/unit

# Load benchmarks against a FastAPI reference and a bare-ASGI floor on this machine's PostgreSQL
# (see bench/README.md).
bench: $(BIN)/cme
	bash bench/run.sh

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
