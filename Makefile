# One task runner for people and CI. `make demo` and `make test` work on a fresh machine with
# only Python 3.11 and make: the virtual environment is built from the committed lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser demo test test-unit test-spec test-integration test-flows test-acceptance lint bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv from requirements.lock and install safehaven

demo: install  ## synthetic population -> ingest -> link -> stratify -> publish -> a first query -> retention plan -> evidence pack and notice, under ./data (or SAFEHAVEN_DATA_ROOT)
	$(BIN)/safehaven demo

browser:  ## headless Chromium for the report page tests (Debian package; needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Chromium (apt-get)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: lint test-unit test-spec test-integration test-flows test-acceptance  ## everything CI runs

test-unit: install  ## fast, no files beyond tmp
	$(PYTEST) tests/unit -q

test-spec: install  ## small tables in, decision out
	$(PYTEST) tests/spec -q

test-integration: install browser  ## real files, GX project, CLI, report pages in headless Chromium
	$(PYTEST) tests/integration -q

test-flows: install  ## the Prefect flows, run as `safehaven` runs them (ephemeral server)
	$(PYTEST) tests/flows -q

test-acceptance: install browser  ## end-to-end on a small synthetic population; the evidence pack and notice in headless Chromium
	$(PYTEST) tests/acceptance -q

lint: install  ## ruff
	$(BIN)/ruff check pipeline tests benchmarks

bench: install  ## benchmarks -> benchmarks/results/
	$(BIN)/python -m benchmarks.run

lock:  ## re-resolve requirements.lock from pyproject.toml (needs network)
	$(PYTHON) -m venv /tmp/safehaven-uv && /tmp/safehaven-uv/bin/pip install --quiet uv
	/tmp/safehaven-uv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
