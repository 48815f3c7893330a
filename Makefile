# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 4
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck pytest test-tools test-all clean

$(VENV)/.run-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.run-installed  ## serve examples/app.py on http://127.0.0.1:8000
	$(BIN)/hasten app:app --app-dir examples --host 127.0.0.1 --port 8000

test: lint typecheck pytest pytest-wheel  ## ruff, mypy --strict, pytest (editable, then the wheel)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests examples bench hatch_build.py
	$(BIN)/ruff format --check src tests examples bench hatch_build.py

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy --strict src

# wstest (Autobahn) runs on Python 2.7: pyenv's, or one on PATH. The suite's Autobahn
# subset needs it, so it is installed before pytest wherever a Python 2.7 is.
PYTHON2 := $(or $(shell ls -d $$HOME/.pyenv/versions/2.7*/bin/python2.7 2>/dev/null | tail -1),$(shell command -v python2.7))
AUTOBAHN_TOOL := $(if $(PYTHON2),.autobahn/.installed)

pytest: $(VENV)/.dev-installed test-tools $(AUTOBAHN_TOOL)  ## the suite on the editable, pure-Python install
	EXPECTED_BUILD=pure $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# -- The wheel users install ---------------------------------------------------------------
# `pip install .` builds a wheel in an isolated environment (hatch_build.py compiles the
# protocol modules with mypyc) and resolves hasten's dependencies from the wheel's metadata.
# pytest-wheel does exactly that into a fresh venv and runs the suite there. The wheel and
# its venv are keyed by a digest of what goes into the build, so an unchanged tree reuses them.
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
WHEEL_INPUTS := $(sort $(shell find src -name '*.py' -o -name py.typed) \
	hatch_build.py pyproject.toml README.md)
WHEEL_KEY := $(shell sha256sum $(WHEEL_INPUTS) | sha256sum | cut -c1-16)
WHEEL_DIR = .wheels/$(PY_VERSION)-$(WHEEL_KEY)
WHEEL = $(WHEEL_DIR)/hasten-*.whl
WHEEL_VENV = .venv-wheel-$(PY_VERSION)

.PHONY: wheel pytest-wheel

$(WHEEL_DIR)/.built:
	rm -rf .wheels/$(PY_VERSION)-*
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(WHEEL_DIR) .
	touch $@

wheel: $(WHEEL_DIR)/.built  ## build the wheel `pip install .` would (in .wheels/)

$(WHEEL_VENV)/.installed-$(WHEEL_KEY): $(WHEEL_DIR)/.built
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet $(WHEEL)
	$(WHEEL_VENV)/bin/python -m pip install --quiet "$$(echo $(WHEEL))[dev]"
	touch $@

pytest-wheel: $(WHEEL_VENV)/.installed-$(WHEEL_KEY) test-tools $(AUTOBAHN_TOOL)  ## the suite on the installed wheel
	EXPECTED_BUILD=compiled $(WHEEL_VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The Debian tools the tests drive (curl, h2load, chromium), installed once before pytest
# starts its workers: several workers running apt-get at once fail on dpkg's lock.
TEST_TOOLS := curl:curl h2load:nghttp2-client chromium:chromium
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	[ -z "$$missing" ] || { echo "installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
	    install -y -qq $$missing; }

# The suite on the installed wheel on every CPython >= 3.11 this machine has (on PATH or
# under pyenv), each in its own .venv-wheel-3.x. A pyenv shim for a version that is installed
# but not selected exists on PATH and fails when run, so every candidate is tried before it
# is used. Every version runs; the failed ones are listed.
test-all: lint typecheck
	@found=0; failed=""; \
	for v in 3.11 3.12 3.13 3.14; do \
	  py=""; \
	  for candidate in $$(command -v python$$v) \
	      $$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); do \
	    if "$$candidate" -c 'import sys; assert sys.implementation.name == "cpython"' 2>/dev/null; \
	    then py=$$candidate; break; fi; \
	  done; \
	  [ -n "$$py" ] || continue; found=1; \
	  echo "== CPython $$v ($$py)"; \
	  $(MAKE) --no-print-directory pytest-wheel PYTHON=$$py || failed="$$failed $$v"; \
	done; \
	[ $$found = 1 ] || { echo "no CPython >= 3.11 found"; exit 1; }; \
	[ -z "$$failed" ] || { echo "FAILED on CPython$$failed"; exit 1; }

clean:
	rm -rf .venv .venv-wheel-* .wheels .bench-base .autobahn .mypy_cache .pytest_cache .ruff_cache

# -- Benchmarks (bench/): hasten vs uvicorn vs granian --------------------------------------
# The peers live in their own venv: they are benchmark peers, not dependencies of hasten.
BENCH_VENV ?= .venv-bench

.PHONY: bench bench-tools bench-profile

$(BENCH_VENV)/.bench-installed: bench/requirements.txt
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	-$(BENCH_VENV)/bin/python -m pip install --quiet hypercorn  # h2 peer, only if it installs
	touch $@

# hasten is measured as users install it: the wheel `pip install .` builds, reinstalled
# whenever it changes; its dependencies come from its metadata.
$(BENCH_VENV)/.hasten-$(WHEEL_KEY): $(BENCH_VENV)/.bench-installed $(WHEEL_DIR)/.built
	$(BENCH_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps $(WHEEL)
	$(BENCH_VENV)/bin/python -m pip install --quiet $(WHEEL)
	rm -f $(BENCH_VENV)/.hasten-* && touch $@

bench-tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null && command -v openssl >/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk nghttp2-client openssl; }

# BASELINE=REV adds the hasten of git revision REV (its wheel, built as `make wheel` builds
# ours, in .venv-bench-base) to every scenario: an A/B of two builds in the same rounds.
BASELINE ?=
BASE_VENV := .venv-bench-base

.PHONY: bench-base
bench-base:
	rm -rf .bench-base $(BASE_VENV) && mkdir -p .bench-base/src
	git archive $(BASELINE) | tar -x -C .bench-base/src
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir .bench-base/dist .bench-base/src
	$(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install --quiet .bench-base/dist/hasten-*.whl fastapi  # json's app

bench: bench-tools $(BENCH_VENV)/.hasten-$(WHEEL_KEY) $(if $(BASELINE),bench-base)  ## side-by-side benchmark (QUICK=1: < 3 min; ONLY="hello ws"; BASELINE=REV)
	$(BENCH_VENV)/bin/python -m bench.run $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY)) \
	  $(if $(BASELINE),--baseline $(BASE_VENV)/bin/python --baseline-name $(BASELINE))

# The profile runs hasten from its Python source (PYTHONPATH=src): py-spy sees no function
# inside a compiled module, and the source is what one optimises.
bench-profile: bench-tools $(BENCH_VENV)/.hasten-$(WHEEL_KEY)  ## py-spy profile of hasten under hello load
	PYTHONPATH=$(CURDIR)/src $(BENCH_VENV)/bin/python -m bench.profile

# -- Fuzzing (tests/fuzz/): the property-based HTTP/1.1 tests, with many more examples ------
.PHONY: fuzz

fuzz: $(VENV)/.dev-installed  ## long hypothesis run over the HTTP/1.1 request path (~10 min)
	HASTEN_FUZZ_PROFILE=long $(BIN)/pytest -q -p no:xdist --timeout=0 tests/fuzz

# -- Autobahn|Testsuite (tests/autobahn.py): the WebSocket fuzzing client -------------------
# wstest runs on Python 2.7 (pyenv's, or one on PATH), installed once in .autobahn/. The
# suite runs a fast subset whenever it is installed; this runs every case group (1-7, 9,
# 10, 12, 13; ~10 min). AUTOBAHN_PYTHON picks the Python hasten runs on (a wheel's venv).
.PHONY: autobahn
AUTOBAHN_PYTHON ?= $(BIN)/python

.autobahn/.installed:
	$(PYTHON2) -m pip install --quiet --target .autobahn/lib autobahntestsuite==0.8.2
	mkdir -p .autobahn/lib/zope && touch .autobahn/lib/zope/__init__.py  # a namespace package on 2.7
	touch $@

autobahn: $(VENV)/.dev-installed .autobahn/.installed  ## the whole Autobahn fuzzingclient suite
	$(BIN)/python -m tests.autobahn --python $(AUTOBAHN_PYTHON)
