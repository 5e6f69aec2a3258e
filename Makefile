# RRR developer commands. `make run` and `make test` are the README's two commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# Exact versions and hashes of every runtime and dev dependency (torch: the local CPU wheel).
LOCK := requirements.lock
LOCK_VENV := .venv-lock
PIP_TOOLS ?= pip-tools==7.7.0
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install lock run serve test lint bench clean openapi

# Install exactly the locked set (hash-checked), then the project itself without resolving again;
# `pip check` fails when pyproject.toml asks for something the lock does not satisfy.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# Re-resolve pyproject.toml (runtime + dev) into $(LOCK); commit the result with the change.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || \
		($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q '$(PIP_TOOLS)')
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
		--allow-unsafe --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file $(LOCK) pyproject.toml

STRATEGY ?= sma_cross
SYMBOLS ?= BTC-USD,ETH-USD
RUN_ARGS ?=

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py runtrader --paper --serve $(HOST):$(PORT) --strategy $(STRATEGY) \
		--symbols $(SYMBOLS) $(RUN_ARGS)

serve: install
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

# Regenerate the committed API contract (tests/rrr_site/api/test_openapi.py fails when it drifts).
openapi: install
	$(BIN)/python manage.py spectacular --validate --file docs/openapi.yaml

bench: install
	test -x .venv-bench/bin/python || bash bench/backtest_setup.sh
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data/db
