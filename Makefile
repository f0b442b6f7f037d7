# One command to set up and run, one to test. Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first, from its own spec: on a CPU machine point TORCH_PIP_ARGS at a CPU wheel
# index (e.g. --index-url <pytorch cpu index>) so pip does not pull the CUDA build.
TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints.txt)
TORCH_PIP_ARGS ?=
export DVC_NO_ANALYTICS := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup run test constraints clean bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip check
	touch $@

# The run's output, then a short summary of its experiment (or of its failure); make fails when the run does.
# Extra workflow inputs: make run RUN_ARGS='--problem diabetes'.
run: setup
	@$(BIN)/python -m tasks.summary -- $(BIN)/pyflyte run workflows/tune_train.py tune_train_wf $(RUN_ARGS)

# Lint and format checks first (seconds), then the layers' import contracts run as a test with the rest.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Re-resolve the working set after changing dependencies (torch stays at TORCH_VERSION).
constraints: setup
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==.*/torch==$(TORCH_VERSION)/' \
		| grep -v '^-e' > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks (bench/): figures, never pass/fail; ends with one JSON line.
# BENCH_QUICK=1 make bench: tiny sizes, a smoke run of the whole harness.
bench: setup
	$(BIN)/python -m bench
