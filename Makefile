# The README's two commands: `make demo` (main job on the embedded default) and `make test`.
# Both create the environment if needed. If a virtualenv/conda env is already active, it is used
# as is, so a user who already has a torch build (CUDA, ROCm, MPS) keeps it.
VENV ?= $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),.venv)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ractd-installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# torch first, and only when absent: the exact pin resolves to the local CPU wheel here;
	@# any other spec would pull GBs of CUDA packages from the registry.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,generate]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ractd quickstart

test: $(STAMP)
	$(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(PY) benchmarks/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
