# Two commands a user needs: `make demo` and `make test`. Both build their own virtualenv from
# the pinned versions in constraints.txt (`make lock` refreshes it; setup.cfg keeps the ranges
# that CML runtimes install from).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt
# Every test runs in `make test`; `make check` is the inner loop (lint, contracts, fast tests): the
# tests that start no local workspace, model server, job run or browser, less those marked `slow`
# (PostgreSQL, worker processes). It takes well under a minute on 2 cores.
PYTEST_WORKERS ?= 2
FAST_TESTS := tests/unit tests/domain tests/decisions tests/test_architecture.py tests/test_docs.py \
	tests/report/test_report_page.py tests/faults/test_abuse_config.py tests/cmlclient/test_adapter.py tests/cml/test_tier.py \
	tests/dashboard/test_views.py tests/dashboard/test_pages.py tests/dashboard/test_job_runs.py tests/dashboard/test_readonly.py

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
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not slow and not spark" $(FAST_TESTS)

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
