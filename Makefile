# Quick start: `make demo` (main job on a bundled default), `make test` (the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-accuracy bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out out/demo
	$(BIN)/python examples/demo_rmm.py --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not reference"

test-accuracy: $(STAMP)
	$(BIN)/python -m pytest -q -s -m reference

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf out .pytest_cache
