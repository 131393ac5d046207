# Doudi's developer commands. Prerequisites: python3 with venv, make, npm, and
# network access to PyPI and the npm registry; everything else is installed into .venv/ here.
#
#   make install     create .venv/ with the project, its dev tools and the console's npm libraries
#   make test        lint, format check, type check, proto checks and the test suite
#   make run         run the platform (4 services + gateway) on SQLite with demo data
#   make calc        settle the worked example case with `doudi calc`
#   make proto       regenerate the gRPC code from proto/ (proto-check: lint + staleness)
#   make lint        ruff check and ruff format --check only
#   make fmt         format and auto-fix lint findings
#   make clean       remove caches, build and test output (distclean: .venv/ too)
#   make constraints re-pin constraints.txt from a fresh install

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; older than pyproject.toml or
# constraints.txt means the install is out of date.
STAMP := $(VENV)/.installed
# The console's front-end libraries (htmx, ECharts, axe-core): the exact versions of
# gateway/console/static-vendor/package-lock.json, from the npm registry into
# .venv/console/node_modules/, which the gateway serves (gateway/console/vendor.py). The
# stamp lives in node_modules/, which `npm ci` empties first: a new lockfile or a removed
# node_modules/ installs again. To move a library, re-pin both files and commit them:
#   npm install --package-lock-only --save-exact --prefix gateway/console/static-vendor PKG@VERSION
CONSOLE_PACKAGE := gateway/console/static-vendor
CONSOLE_STAMP := $(VENV)/console/node_modules/.doudi-installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS='-k db -x'`.
PYTEST_ARGS ?=
EXAMPLE := examples/xixia-inpatient-level2.case.json

.PHONY: help install test lint fmt typecheck proto proto-check pytest run calc clean distclean \
	constraints

help:
	@sed -n '4,13s/^# \{0,1\}//p' Makefile

install: $(STAMP) $(CONSOLE_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip and setuptools are pinned too (setuptools also as the build backend,
# through --build-constraint), so a fresh install is the same everywhere.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade -c constraints.txt pip setuptools
	$(BIN)/python -m pip install --quiet -c constraints.txt --build-constraint constraints.txt \
		-e '.[dev]'
	touch $@

$(CONSOLE_STAMP): $(CONSOLE_PACKAGE)/package.json $(CONSOLE_PACKAGE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: the console's libraries come from the npm registry (Debian: apt-get install npm)" >&2; exit 1; }
	mkdir -p $(VENV)/console
	cp $^ $(VENV)/console/
	npm ci --silent --no-audit --no-fund --prefix $(VENV)/console
	touch $@

test: lint typecheck proto-check pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# xdist pays off even on two cores: the whole suite took 36 s in one process
# and 23 s with -n auto (property tests and one PostgreSQL database per test).
# loadgroup: the tests of an xdist_group run on one worker (the console's browser
# tests share one platform and one browser); the others are spread as by load.
pytest: install
	$(BIN)/pytest -n auto --dist loadgroup $(PYTEST_ARGS)

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: install
	$(BIN)/doudi run

calc: install
	$(BIN)/doudi packs
	$(BIN)/doudi calc $(EXAMPLE)

# buf (the protobuf linter) comes from the npm registry into .venv/buf/.
BUF_VERSION := 1.75.0
BUF := $(VENV)/buf/node_modules/.bin/buf

$(BUF): | $(BIN)/python
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@$(BUF_VERSION)

proto: install
	$(BIN)/python proto/generate.py

# Fails when the protos break buf's STANDARD lint rules or the committed
# generated code differs from what `make proto` would write.
proto-check: install $(BUF)
	$(BIN)/python proto/generate.py --check --lint $(BUF)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis test-output
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Resolve the newest versions pyproject.toml allows in a throwaway venv and pin
# them all (minus the project itself). Review the diff before committing it.
constraints:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip setuptools && \
	"$$tmp/venv/bin/python" -m pip install --quiet -e '.[dev]' && \
	{ echo "# Exact versions of everything 'make install' puts in .venv/, and of the"; \
	  echo "# build backend. Regenerate with 'make constraints'; do not edit by hand."; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable \
	    | grep -v -i -E '^doudi( |=|@)' | LC_ALL=C sort -f -t= -k1,1; } > constraints.txt.new && \
	if cmp -s constraints.txt.new constraints.txt; then \
	  rm constraints.txt.new; echo "constraints.txt is up to date"; \
	else \
	  mv constraints.txt.new constraints.txt; echo "constraints.txt updated"; \
	fi
