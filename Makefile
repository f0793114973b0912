# Two entry points (see README): `make demo` runs the main job on built-in defaults, `make test`
# runs lint, format check and the test suite. Both create ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints.txt

.PHONY: install install-dev demo test test-fast lint format clean

$(BIN)/hoirecon: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(BIN)/hoirecon plugins/hoirecon-example/setup.cfg plugins/hoirecon-smooth/setup.cfg
	$(PIP) -e '.[dev,meshes,video,ray]' -e plugins/hoirecon-example -e plugins/hoirecon-smooth
	touch $@

install: $(BIN)/hoirecon
install-dev: $(VENV)/.dev

# The demo: a synthetic mug clip, fitted with configs/fit/demo.yaml (a few minutes on 2 cores).
# Run again, it finishes the same run (resuming it) and writes its outputs anew.
demo: install
	$(BIN)/hoirecon doctor
	test -d clips/demo-mug || $(BIN)/hoirecon synth clip --category mug --out clips/demo-mug
	if [ -f runs/demo/checkpoints/last.ckpt ]; then $(BIN)/hoirecon fit --resume runs/demo; \
	else $(BIN)/hoirecon fit --config configs/fit/demo.yaml; fi

# Import layers: the contracts in setup.cfg [importlinter] (docs/architecture.md, section Layers).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

test: lint
	$(BIN)/python -m pytest -q -n 2 tests

# The edit loop (under 90 s beside a 4-process benchmark): no lint, and not the tests marked slow
# (whole fits, trainings and comparisons, tests that spawn processes or take over 5 s; see
# tests/conftest.py). `make test` runs them all. One torch thread per worker: two workers with two
# threads each on 2 busy cores wait on each other (131 s instead of 82 s beside the benchmark).
test-fast: install-dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 -m "not slow" tests

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
