# Two entry points (see README): `make demo` runs the main job on built-in defaults, `make test`
# runs lint, format check and the test suite. Both create ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints.txt

.PHONY: install install-dev demo test lint format clean

$(BIN)/hoirecon: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(BIN)/hoirecon
	$(PIP) -e '.[dev]' -e plugins/hoirecon-example
	touch $@

install: $(BIN)/hoirecon
install-dev: $(VENV)/.dev

demo: install
	$(BIN)/hoirecon doctor
	$(BIN)/hoirecon list

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -n 2 tests

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
