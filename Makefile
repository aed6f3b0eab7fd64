# spine-certify: `make certify` runs the certification on the embedded profile,
# `make test` runs the harness's own tests. Both set everything up on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ALLURE := node node_modules/allure/cli.js
PYTEST_ARGS ?=

.PHONY: setup certify test report lint clean up down

STAMPS := .spine-certify/stamps

setup: $(VENV)/.installed node_modules/allure/cli.js $(STAMPS)/postgres $(STAMPS)/chromium

$(VENV)/.installed: pyproject.toml
	@echo "== python environment ($(VENV))"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

node_modules/allure/cli.js: package.json
	@echo "== Allure 3 CLI (npm, project-local)"
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

# PostgreSQL and Chromium come from Debian, installed only when missing.
$(STAMPS)/postgres:
	@mkdir -p $(STAMPS)
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "== PostgreSQL: present"; \
	else \
	  echo "== PostgreSQL: installing with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi
	@touch $@

$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	@if command -v chromium >/dev/null; then \
	  echo "== Chromium: present"; \
	else \
	  echo "== Chromium: installing with apt-get (renders the report in tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	@touch $@

test: lint
	$(PYTEST) tests $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check harness spine steps tests features bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The certification: scenarios first, then the single-file report whatever the outcome.
certify: setup
	@rc=0; $(PYTEST) features/ --alluredir reports/allure-results --clean-alluredir $(PYTEST_ARGS) || rc=$$?; \
	$(MAKE) --no-print-directory report || { [ $$rc -ne 0 ] || rc=1; }; \
	exit $$rc

report:
	ALLURE_RESULTS_DIR=reports/allure-results $(ALLURE) generate reports/allure-results --config allurerc.mjs --output reports/allure-report
	@echo "report: reports/allure-report/index.html"

up: setup
	$(VENV)/bin/spine-certify up

down:
	$(VENV)/bin/spine-certify down

clean:
	rm -rf .spine-certify reports/allure-results reports/allure-report
