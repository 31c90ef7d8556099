# Two commands a user needs: `make demo` and `make test`. Both build their own virtualenv from
# the pinned versions in constraints.txt (`make lock` refreshes it; setup.cfg keeps the ranges
# that CML runtimes install from).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt
# Every test runs in `make test`; `make check` is the inner loop (lint, contracts, types, fast tests):
# every test of tests/ that starts no local workspace, model server, job run, browser, PostgreSQL,
# Spark or MLflow server. tests/conftest.py marks those `heavy` from the fixtures they use (or their
# folder); `slow` (worker processes) and `spark` are left out too. Under a minute on 2 cores.
PYTEST_WORKERS ?= 2
FAST := not heavy and not slow and not spark

.PHONY: demo test check format bench install system venv-tools lock clean

$(STAMP): setup.cfg pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test,mlflow,spark]'
	touch $(STAMP)

install: $(STAMP)

# System packages the tests need (Chromium, the PostgreSQL server): installed as root, else explained.
system:
	PYTHON=$(PYTHON) ./scripts/system-packages.sh all

# Only what the virtualenv itself needs (python3-venv on a minimal Debian): `make demo` runs this.
venv-tools:
	PYTHON=$(PYTHON) ./scripts/system-packages.sh venv

demo: venv-tools $(STAMP)
	$(BIN)/cml-monitor demo --config config/pipeline.yaml --out demo-output

test: system $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "$(FAST)"

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench

# Re-resolve the newest versions setup.cfg allows, in a throwaway virtualenv, and pin them.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet '.[test,mlflow,spark]'
	{ echo "# Pinned by 'make lock' on $$(date -u +%F) with $$($(PYTHON) --version); 'make' installs with -c $(LOCK)."; \
	  .venv-lock/bin/pip freeze --all --exclude cml-monitor --exclude setuptools --exclude wheel; } > $(LOCK)
	rm -rf .venv-lock build *.egg-info

clean:
	rm -rf .cml-local .cml-monitor var demo-output
