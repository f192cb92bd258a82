# Two commands on a fresh machine: `make up` and `make test`. Only python3 (3.11+) and make are needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
UV_VERSION := 0.13.9

.PHONY: install up demo test lint unit integration e2e token docs bench bench-smoke clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)" >&2
	@# Compiled once here: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile its
	@# imports again (a gateway started in 1.4 s instead of 0.65).
	@$(BIN)/uv sync --locked --quiet --compile-bytecode >&2
	@touch $(STAMP)

install: $(STAMP)

up: install
	@$(BIN)/python deploy/supervisor.py up

# Into the running `make up`: DEMO_SCALE=tiny|small|hanoi (default small), DEMO_SEED (default 2015).
demo: install
	@$(BIN)/python -m demo --scale "$(or $(DEMO_SCALE),small)" --seed "$(or $(DEMO_SEED),2015)"

test: install lint
	$(BIN)/python -m pytest tests
	$(MAKE) --no-print-directory bench-smoke

lint: install
	$(BIN)/ruff check libs services tests bench deploy docs
	$(BIN)/mypy libs services deploy/demo
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest tests/unit tests/contracts

integration: install
	$(BIN)/python -m pytest tests/integration

e2e: install
	$(BIN)/python -m pytest tests/e2e

token: install
	@$(BIN)/python -m servicekit.devissuer --role "$(ROLE)" $(if $(UNIT),--unit "$(UNIT)")

docs: install
	$(BIN)/python docs/export.py

bench: install
	$(BIN)/python bench/run.py

bench-smoke: install
	$(BIN)/python bench/run.py --smoke

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
