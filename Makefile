# `make demo` and `make test` do all the set-up: a .venv with the CPU build of torch, then searchbert itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU wheel of torch (an unpinned `torch` would pull a multi-GB CUDA build)
TORCH ?= torch==2.13.0
# dev: pytest and ruff; openvino: so the test suite covers --backend openvino too
EXTRAS ?= dev,openvino
DEMO_QUERY ?= which transcription factor keeps blood stem cells dormant

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: install
	$(VENV)/bin/searchbert index corpora/scifact-sample
	$(VENV)/bin/searchbert query "$(DEMO_QUERY)" -k 5

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check searchbert tests benchmarks

bench: install
	$(PY) benchmarks/indexing_speed.py

clean:
	rm -rf indexes/default indexes/eval .pytest_cache
