# dmlviz: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: venv chromium demo serve test bench gpu-wheels clean

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

# The pure-Python packages a lent GPU machine lacks, as wheels in the ignored .whl/ (versions from constraints.txt),
# for benchmarks/gpu_check.sh; their own needs (numba, scikit-learn, torch, ...) are on that machine already.
GPU_WHEELS := pytorch-metric-learning umap-learn pynndescent mlxtend
gpu-wheels:
	mkdir -p .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
		$(foreach p,$(GPU_WHEELS),$(shell grep -i '^$(p)==' constraints.txt))

clean:
	rm -rf $(VENV) .cache .pytest_cache
