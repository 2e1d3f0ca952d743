# dmlviz: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: venv demo test bench clean

venv: $(STAMP)

# torch/torchvision come pinned from constraints.txt (pip takes the local CUDA build here).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/dmlviz demo --runs-dir runs

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/bench_softtriple.py
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_epoch.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
