# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean handout

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

# The students' archive of the course: the repository without docs/course/instructor/ (reference
# solutions, hidden cases) and the course's own tests (docs/course/README.md).
HANDOUT ?= dist/wpsim-course-handout.tar.gz

handout: $(BIN)/wpsim
	mkdir -p $(dir $(HANDOUT))
	$(BIN)/python docs/course/build_handout.py $(HANDOUT)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
