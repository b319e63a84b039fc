# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE := .tools/node_modules/.bin/azurite-blob
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup demo test lint ui bench clean

$(BIN)/chargeback: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund --silent azurite@3.35
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(BIN)/chargeback $(AZURITE) $(DAGSTER_HOME)/dagster.yaml

## Backfill yesterday (UTC) on the simulated source, check it against the simulator's ground truth.
demo: $(BIN)/chargeback $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/chargeback backfill yesterday
	$(BIN)/chargeback verify-simulated yesterday
	@echo
	@echo "Open the Dagster UI on these runs:  make ui   (then http://127.0.0.1:3000)"

## The whole test suite, with a real Azurite started by the tests.
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --durations=10

lint: $(BIN)/chargeback
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: $(BIN)/chargeback $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

## A quick benchmark (1M-request day); see BENCHMARKS.md for the 10M-request run.
bench: $(BIN)/chargeback
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m bench run --quick

clean:
	rm -rf data .dagster_home
