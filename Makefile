# dmlviz: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: venv chromium demo serve test bench clean

venv: $(STAMP)

# torch/torchvision come pinned from constraints.txt (pip takes the local CUDA build here).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,lightning]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (never a browser downloaded by Playwright).
chromium:
	@test -x /usr/bin/chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: venv
	$(VENV)/bin/dmlviz demo --runs-dir runs

serve: venv
	$(VENV)/bin/dmlviz serve runs

test: venv chromium
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/bench_softtriple.py
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_epoch.py
	$(PY) benchmarks/bench_layouts.py
	$(PY) benchmarks/bench_dashboard.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
