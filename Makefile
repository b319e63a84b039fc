# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE := .tools/node_modules/.bin/azurite-blob
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# The demo's history: the last DEMO_DAYS days (UTC) up to yesterday, at the simulator's default rate, the
# volume the example pricing file's PTU counts are sized for (a real tenant's: busy afternoon minutes near
# full, quiet nights), so the PTU advice is about a sensible deployment. `make demo` and `make ui` share these
# (partitions starting at the first demo day, the same simulated rate), so the UI shows the demo's partitions
# and its schedule lands the same traffic.
DEMO_DAYS ?= 7
DEMO_REQUESTS_PER_HOUR ?= 2000
DEMO_FIRST_DAY := $(shell $(PYTHON) -c "import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=$(DEMO_DAYS)))")
demo ui: export CHARGEBACK_PARTITIONS_START ?= $(DEMO_FIRST_DAY)
demo ui: export CHARGEBACK_SIMULATED_REQUESTS_PER_HOUR ?= $(DEMO_REQUESTS_PER_HOUR)
# Budgets and anomalies: the example budgets (one product over budget, one near it), and hr-assistant's
# tokens x4 on the demo's last day, judged against the 6 days before it (production's minimum is 7).
DEMO_LAST_DAY := $(shell $(PYTHON) -c "import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))")
demo ui: export CHARGEBACK_BUDGETS_FILE ?= $(CURDIR)/budgets.example.yaml
demo ui: export CHARGEBACK_SIMULATED_SURGE_PRODUCT ?= hr-assistant
demo ui: export CHARGEBACK_SIMULATED_SURGE_FACTOR ?= 4
demo ui: export CHARGEBACK_SIMULATED_SURGE_DAYS ?= $(DEMO_LAST_DAY)
demo ui: export CHARGEBACK_ANOMALY_MIN_HISTORY_DAYS ?= 6
# The demo also publishes the FinOps hubs copy, into a local folder standing in for the hub's `ingestion` container.
demo ui: export CHARGEBACK_FINOPS_HUBS_DIR ?= $(CURDIR)/data/finops-hubs/ingestion
# And the simulated tenant's Cost Management export (README "Actual cost"), in a folder standing in for the
# `msexports` container: the days it covers turn actual, the last two (its lag) stay estimates.
demo ui: export CHARGEBACK_COST_EXPORT_DIR ?= $(CURDIR)/data/cost-export/msexports

.PHONY: setup demo test test-e2e lint ui bench clean lock lock-upgrade wheel wheel-test image-test instance-test

# The locked environment (requirements-dev.lock: the package's dependencies with the test, bench and deploy
# extras, every file's hash), then the package itself, editable, without resolving anything again.
$(BIN)/chargeback: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund --silent azurite@3.35
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(BIN)/chargeback $(AZURITE) $(DAGSTER_HOME)/dagster.yaml

## Backfill the last DEMO_DAYS days (UTC) on the simulated source, check yesterday against the simulator's
## ground truth.
demo: $(BIN)/chargeback $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/chargeback simulate-cost-export
	$(BIN)/chargeback backfill $(DEMO_FIRST_DAY) yesterday --days-per-run $(DEMO_DAYS)
	$(BIN)/chargeback verify-simulated yesterday
	$(BIN)/chargeback report yesterday
	@echo "Cost basis per day (estimate until the Cost Management export covers a day, then actual):"
	@$(BIN)/python -c "import glob, pyarrow.parquet as pq; [print('  ' + f.split('usage_date=')[1][:10] + ': ' + ', '.join(sorted(set(pq.read_table(f)['cost_basis'].to_pylist())))) for f in sorted(glob.glob('$${CHARGEBACK_OUTPUT_DIR:-data/reports}/daily/usage_date=*/chargeback.parquet'))]"
	@d=$(DEMO_LAST_DAY); echo "The month's statement, to read in a browser: $${CHARGEBACK_OUTPUT_DIR:-data/reports}/monthly/month=$${d%-*}/statement.html"
	@echo
	@echo "Open the Dagster UI on these runs:  make ui   (then http://127.0.0.1:3000)"

## The whole test suite, with a real Azurite started by the tests.
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --durations=10 -m "not slow"

## The multi-day end-to-end files (chargeback_pipeline_tests/conftest.py END_TO_END_FILES), which CI runs
## after `make test`.
test-e2e: setup
	$(BIN)/python -m pytest -n 2 --durations=10 -m slow

lint: $(BIN)/chargeback
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The Dagster UI and daemon over the demo's DAGSTER_HOME: the hourly schedule and the rollup sensors run.
ui: $(BIN)/chargeback $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

## A quick benchmark (1M-request day); see BENCHMARKS.md for the 10M-request run.
bench: $(BIN)/chargeback
	$(BIN)/python -m bench run --quick

## The lockfiles after pyproject.toml changed: `make lock` keeps every version already locked and adds what is
## new; `make lock-upgrade` re-resolves to the newest releases pyproject.toml allows (README "Dependencies and
## why"). requirements.lock (the image: the package and its deploy extra) takes requirements-dev.lock's versions.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --native-tls --quiet
lock lock-upgrade: $(BIN)/chargeback
	$(LOCK) $(if $(filter lock-upgrade,$@),--upgrade) --extra test --extra bench --extra deploy -o requirements-dev.lock
	$(LOCK) --extra deploy -c requirements-dev.lock -o requirements.lock

## The wheel, into dist/ (what the image installs; pip builds it as `python -m build` would).
wheel: $(BIN)/chargeback
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

## Slow end-to-end checks, run by CI after `make test`: the wheel installed outside the checkout; the image
## built and run (Docker, as root); the production instance (deploy/dagster.yaml on a real PostgreSQL).
wheel-test: setup
	$(BIN)/python -m pytest -n 0 -q -s --durations=0 deploy/tests/test_wheel.py

image-test: setup
	bash deploy/ci/image_test.sh

instance-test: setup
	bash deploy/ci/instance_test.sh

clean:
	rm -rf data .dagster_home
