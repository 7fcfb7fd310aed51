# make demo  : set everything up and run the whole pipeline through Airflow on the bundled sample
# make test  : set everything up and run the test suite (both cores)
# make test-fast : the fast tier of the suite, under 2 minutes (README, "Tests")
# make ui    : Airflow's web UI on the demo's runs, http://127.0.0.1:8080, the admin password printed
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export AIRFLOW__EMAIL__FROM_EMAIL ?= Regime monitor <regime-monitor@localhost>
export PATH := $(BIN):$(PATH)

.PHONY: demo test test-fast setup airflow-init lint clean sample chromium postgres redis s3server bench ui

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# the metadata DB, then the pools of one slot that keep one writer per resource on any worker (POOLS below: their one
# definition; docs/operations.md, "One writer"): a task in a pool that does not exist is never scheduled
POOLS := $(CURDIR)/include/regime/pools.json
airflow-init: setup
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	$(BIN)/airflow pools import $(POOLS) >> $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	touch $(AIRFLOW_HOME)/pools-imported

demo: airflow-init
	$(BIN)/python -m regime.demo

# Airflow's web UI on the demo's SQLite metadata DB (.airflow/), on 127.0.0.1 only, port REGIME_UI_PORT (8080): prints
# the URL, the user and its password; Ctrl-C stops every process it started (docs/operations.md, "The Airflow UI")
ui: airflow-init
	$(BIN)/python -m regime.ui

# the suite on both cores (pytest-xdist; tests/conftest.py says which tests share a worker and orders the costliest
# first): PYTEST_WORKERS=1 for one
PYTEST_WORKERS ?= 2
PYTEST_XDIST = $(if $(filter 0 1,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)

test: airflow-init chromium postgres redis s3server
	$(BIN)/python -m pytest $(PYTEST_XDIST)

# the fast tier (README, "Tests"): everything not marked slow (no e2e stack, no DAG run through Airflow, no reference
# data); the Airflow home is initialised once, and again when the pools file changed since (or never was imported)
test-fast: setup chromium s3server
	@test $(AIRFLOW_HOME)/pools-imported -nt $(POOLS) || $(MAKE) --no-print-directory airflow-init
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not slow"

# headless Chromium renders the HTML report in the tests (Debian's package; root on the project's machines)
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# PostgreSQL, the metadata DB of the end-to-end tests' real Airflow stack (Debian's package; root). tests/e2e runs its
# own server as the `postgres` user, in a temporary folder, on a free port on 127.0.0.1; the package's cluster is unused
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Redis, the Celery broker of the end-to-end tests' CeleryExecutor stack (Debian's package; root). tests/e2e runs its own
# server on a free port on 127.0.0.1, without persistence; the package's service is unused
redis:
	@test -x /usr/bin/redis-server || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# moto's S3-compatible server, which tests/test_objectstore.py starts on a free port on 127.0.0.1: in a venv of its own
# (.venv-s3, requirements-s3server.txt), since its botocore pins python-dateutil below what requirements.txt pins
S3VENV := $(CURDIR)/.venv-s3
s3server: $(S3VENV)/.installed

$(S3VENV)/.installed: requirements-s3server.txt
	test -x $(S3VENV)/bin/python || $(PYTHON) -m venv $(S3VENV)
	$(S3VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-s3server.txt
	touch $@

# where the time goes, at today's size and at 100x it (docs/performance.md); about 30 minutes on the shared 2-core machine;
# its bucket section runs moto_server (s3server)
bench: airflow-init s3server
	$(BIN)/python benchmarks/run.py

lint: setup
	$(BIN)/ruff check .

sample: setup
	$(BIN)/python include/sample/generate.py

clean:
	rm -rf $(VENV) $(S3VENV) $(AIRFLOW_HOME) data build *.egg-info include/*.egg-info
