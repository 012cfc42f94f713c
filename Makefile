# One task runner for people and CI. `make demo` and `make test` work on a fresh machine with
# only Python 3.11 and make: the virtual environment is built from the committed lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest
PIP    := $(BIN)/python -m pip
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install tools browser hsm demo test test-unit test-spec test-integration test-flows test-acceptance lint bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@# uv, at the lock's own version and hash, then exactly the lock: `uv pip sync` resolves nothing,
	@# checks every file against its hash and installs only what the lock lists
	awk '/^[a-z]/{p = /^uv==/} p' requirements.lock > $(VENV)/uv-requirement.txt
	$(PIP) install --quiet --no-deps --require-hashes -r $(VENV)/uv-requirement.txt
	$(BIN)/uv pip sync --quiet --native-tls --require-hashes --compile-bytecode --python $(BIN)/python requirements.lock
	@# the project itself, built by the locked setuptools with no index to fetch from
	$(PIP) install --quiet --no-deps --no-index --no-build-isolation -e .
	$(PIP) check
	@# the lock is closed: the project and its extras resolve from what is installed, with no index
	$(PIP) --isolated install --quiet --dry-run --no-index --no-build-isolation -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv from requirements.lock and install safehaven

# Outside tools the tests run against our files, each in its own environment from its own lock (their
# pins would fight the project's): datacontract-cli lints every contract as an outside ODCS user would.
TOOLS_VENV  := .venv-datacontract
TOOLS_LOCK  := tools/datacontract/requirements.lock
TOOLS_STAMP := $(TOOLS_VENV)/.installed-$(shell cat $(TOOLS_LOCK) | cksum | cut -d' ' -f1)

$(TOOLS_STAMP): $(TOOLS_LOCK) $(STAMP)
	rm -rf $(TOOLS_VENV)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(BIN)/uv pip sync --quiet --native-tls --require-hashes --compile-bytecode --python $(TOOLS_VENV)/bin/python $(TOOLS_LOCK)
	touch $@

tools: $(TOOLS_STAMP)  ## .venv-datacontract: datacontract-cli from its own lock, for the contract lint test

demo: install  ## synthetic population -> ingest -> link -> stratify -> publish -> a first query -> retention plan -> evidence pack and notice, under ./data (or SAFEHAVEN_DATA_ROOT)
	$(BIN)/safehaven demo

browser:  ## headless Chromium for the report page tests (Debian package; needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Chromium (apt-get)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

hsm:  ## SoftHSM2, the PKCS#11 token the HSM credential tests use (Debian package; needs root or sudo)
	@test -f /usr/lib/softhsm/libsofthsm2.so && command -v softhsm2-util >/dev/null 2>&1 || \
	  { echo "installing SoftHSM2 (apt-get)"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq softhsm2 >/dev/null; }

TESTS        := tests/unit tests/spec tests/integration tests/flows tests/acceptance
TEST_WORKERS ?= 2

test: lint browser hsm tools  ## everything CI runs: every test kind in one session (shared fixtures), on two workers
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup $(TESTS) -q --durations=30

test-unit: install  ## fast, no files beyond tmp
	$(PYTEST) tests/unit -q

test-spec: install  ## small tables in, decision out
	$(PYTEST) tests/spec -q

test-integration: install browser hsm tools  ## real files, GX project, CLI, report pages in headless Chromium
	$(PYTEST) tests/integration -q

test-flows: install  ## the Prefect flows, run as `safehaven` runs them (ephemeral server)
	$(PYTEST) tests/flows -q

test-acceptance: install browser  ## end-to-end on a small synthetic population; the evidence pack and notice in headless Chromium
	$(PYTEST) tests/acceptance -q

lint: install  ## ruff
	$(BIN)/ruff check pipeline tests benchmarks

bench: install  ## benchmarks -> benchmarks/results/
	$(BIN)/python -m benchmarks.run

# The lock is resolved from pyproject.toml as of LOCK_CUTOFF: uv ignores releases uploaded after the
# cutoff and (`--upgrade`) any pins already in the file. To take newer releases, move the cutoff and
# re-run the tests. `make lock LOCK_UPGRADE=` keeps the pins in the output files where they still
# resolve (the lock test's check: the committed locks are what uv keeps, whatever the index has gained).
LOCK_CUTOFF := 2026-11-24T00:00:00Z
UV_VERSION  := 0.13.9
LOCK_VENV   := /tmp/safehaven-uv-$(UV_VERSION)
UV          ?= $(LOCK_VENV)/bin/uv
LOCK_OUT    ?= requirements.lock
TOOLS_LOCK_OUT ?= $(TOOLS_LOCK)
LOCK_UPGRADE ?= --upgrade

lock: $(UV)  ## re-resolve requirements.lock from pyproject.toml as of LOCK_CUTOFF (needs network)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --exclude-newer $(LOCK_CUTOFF) $(LOCK_UPGRADE) --custom-compile-command "make lock" \
	  --quiet -o $(LOCK_OUT)
	$(UV) pip compile tools/datacontract/requirements.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --exclude-newer $(LOCK_CUTOFF) $(LOCK_UPGRADE) --custom-compile-command "make lock" \
	  --quiet -o $(TOOLS_LOCK_OUT)

$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .pytest_cache .ruff_cache
