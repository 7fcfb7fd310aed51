# make demo  : set everything up and run the whole pipeline through Airflow on the bundled sample
# make test  : set everything up and run the test suite
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

.PHONY: demo test setup airflow-init lint clean sample chromium postgres bench

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

airflow-init: setup
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }

demo: airflow-init
	$(BIN)/python -m regime.demo

test: airflow-init chromium postgres
	$(BIN)/python -m pytest

# headless Chromium renders the HTML report in the tests (Debian's package; root on the project's machines)
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# PostgreSQL, the metadata DB of the end-to-end tests' real Airflow stack (Debian's package; root). tests/e2e runs its
# own server as the `postgres` user, in a temporary folder, on a free port on 127.0.0.1; the package's cluster is unused
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# where the time goes, at today's size and at 100x it (docs/performance.md); about 10 minutes
bench: airflow-init
	$(BIN)/python benchmarks/run.py

lint: setup
	$(BIN)/ruff check .

sample: setup
	$(BIN)/python include/sample/generate.py

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) data build *.egg-info include/*.egg-info
