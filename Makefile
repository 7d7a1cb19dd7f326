# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/wpsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-extras: $(BIN)/wpsim
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/wpsim
	$(BIN)/wpsim demo

test: $(VENV)/.test-extras
	$(BIN)/ruff check wpsim kernels tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.test-extras
	$(BIN)/ruff format wpsim kernels tests benchmarks
	$(BIN)/ruff check --fix wpsim kernels tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
