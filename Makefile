# `make demo` and `make test` do all the set-up: a .venv with the CPU build of torch, then searchbert itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch: on Linux without an NVIDIA GPU, the CPU build (`+cpu`: from a local wheel or mirror when this machine has
# one, else from PyTorch's CPU index). From PyPI an unpinned or plain pin is the multi-GB CUDA build on Linux; on
# macOS and Windows PyPI's wheel is the CPU one. TORCH=... installs exactly what you name instead.
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH ?=
# `make demo` installs searchbert alone (what `pip install searchbert` gives: index, query, eval, calibrate...);
# `make test` and `make dev` add every extra, since the tests cover them all. dev: pytest, ruff and LangChain's
# standard test suites; openvino: --backend openvino; rag: the LangChain, LlamaIndex, Haystack and MCP adapters;
# finetune: `searchbert finetune`; serve: `searchbert serve` and `watch`; ray and milvus: `index --ray`,
# `--vector-store milvus`; static: model2vec; plot: `eval --plot`
EXTRAS ?= dev,openvino,rag,finetune,serve,ray,milvus,static,plot
DEMO_QUERY ?= which transcription factor keeps blood stem cells dormant
# a question the abstracts cannot answer: the demo shows it says so
DEMO_OFF_TOPIC ?= best pizza recipe with mozzarella

.PHONY: install dev demo test test-install lint bench clean browser netns

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -qq -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	@if [ -n "$(TORCH)" ]; then $(PY) -m pip install -qq "$(TORCH)"; \
	elif [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "installing torch $(TORCH_VERSION), CPU build"; \
		$(PY) -m pip install -qq "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
		|| $(PY) -m pip install -qq "torch==$(TORCH_VERSION)+cpu" --extra-index-url "$(TORCH_CPU_INDEX)"; \
	else $(PY) -m pip install -qq "torch==$(TORCH_VERSION)"; fi
	$(PY) -m pip install -qq -e .
	rm -f $(VENV)/.installed-dev
	touch $@

demo: install
	$(VENV)/bin/searchbert index corpora/scifact-sample
	$(VENV)/bin/searchbert query "$(DEMO_QUERY)" -k 5
	$(VENV)/bin/searchbert query "$(DEMO_OFF_TOPIC)"

# the search page is tested in a real headless Chromium: Debian's chromium and its driver, installed here when
# missing (as root; otherwise it says what to install). The tests then refuse to skip the browser test.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium and chromium-driver (for the search page's browser test)"; \
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else echo "make test needs chromium and chromedriver: sudo apt-get install chromium chromium-driver"; exit 1; fi; \
	fi

# a Milvus server, `ray start` and a plain ray.init listen on every interface: their tests run in a network namespace
# of their own, where only loopback exists (unshare -rn: no root needed where user namespaces are allowed)
netns:
	@if ! command -v ip >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing iproute2 (ip: brings up loopback in the tests' own network namespace)"; \
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
		else echo "make test needs ip (iproute2) and unshare (util-linux)"; exit 1; fi; \
	fi

test: dev browser netns
	$(VENV)/bin/ruff check searchbert tests benchmarks
	SEARCHBERT_REQUIRE_BROWSER=1 $(PY) -m pytest -m "not netns and not install"
	unshare -rn sh -c 'ip link set lo up && SEARCHBERT_IN_NETNS=1 $(PY) -m pytest -m netns -p no:cacheprovider'

# `pip install searchbert` alone, in a fresh virtual environment: index, query, and each extra named when needed
test-install: dev
	$(PY) -m pytest -m install

lint: dev
	$(VENV)/bin/ruff check searchbert tests benchmarks

bench: dev
	$(PY) benchmarks/indexing_speed.py

clean:
	rm -rf indexes/default indexes/eval .pytest_cache
