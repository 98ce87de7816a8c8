# Every target creates .venv when missing and installs graphkit into it (torch pinned to the
# CPU wheel 2.13.0: an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphkit-installed
PYTEST_ARGS ?=
# test workers (pytest-xdist): one per core of the 2-core machines CI and development run on
TEST_JOBS ?= 2

.PHONY: install run test test-slow bench corpus lint format clean fuzz fuzz-coverage

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	@# the distribution was named graphkit before graphkit-onnx: drop an old install of it
	@$(PY) -m pip uninstall -q -y graphkit >/dev/null 2>&1 || true
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: install
	$(VENV)/bin/graphkit apply pipelines/wseg_310p.yaml

test: install lint
	$(PY) -m pytest -q -n $(TEST_JOBS) $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# every benchmark script, run as a module from the repository root (benchmarks.models: the shared model builders)
bench: install
	@for script in benchmarks/*.py; do name=$$(basename $$script .py); case $$name in __init__|models) continue;; esac; \
		echo "== $$script"; $(PY) -m benchmarks.$$name || exit 1; done

# the real-model corpus: export, graphkit vs onnxsim, results in docs/corpus-results.json and the tables
corpus: install
	$(PY) -m benchmarks.corpus

# The long fuzz run (see docs/fuzz.md): JSON summary on stdout, failing attempts in $(FUZZ_OUT).
FUZZ_ATTEMPTS ?= 2000
FUZZ_SEED ?= 1
FUZZ_JOBS ?= 2
FUZZ_SIGNALS ?= 60
FUZZ_TIME ?=
FUZZ_TIMEOUT ?= 30
FUZZ_OUT ?= fuzz-findings

fuzz: install
	$(PY) -m fuzz --attempts $(FUZZ_ATTEMPTS) --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS) \
		--signals $(FUZZ_SIGNALS) --subprocess-every 50 --timeout $(FUZZ_TIMEOUT) --findings $(FUZZ_OUT) \
		--summary $(FUZZ_OUT)/summary.json $(if $(FUZZ_TIME),--time-budget $(FUZZ_TIME),)

fuzz-coverage: install
	$(PY) -m pip install -q --disable-pip-version-check -e '.[fuzz]'
	$(PY) -m fuzz --coverage --time-budget $(or $(FUZZ_TIME),600) --findings $(FUZZ_OUT)/coverage

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis fuzz-findings
