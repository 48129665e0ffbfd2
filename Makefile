# The whole set-up on a fresh machine is `make run` or `make test`: each creates .venv when it is
# missing and installs from requirements.lock, again only when the lock (or pyproject) changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
STAMP  := $(VENV)/.installed-$(LOCK_HASH)
PYTEST_ARGS ?=

.PHONY: install run book test test-unit test-notebooks test-browser test-oldest bench clean help

help:
	@echo "make run           run every notebook headless (quick profile) into runs/<timestamp>-quick/"
	@echo "make book          the newest run under runs/ as a static website -> build/book/<run>/"
	@echo "make test          unit tests + notebook validation (what CI runs)"
	@echo "make test-browser  run notebook 07 in a real JupyterLab + Chromium and check it; the book of a fixture run too"
	@echo "make test-oldest   the unit tests on the oldest versions pyproject.toml admits (requirements-oldest.txt, .venv-oldest)"
	@echo "make bench         speed and memory benchmarks -> bench/results.md"

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) -m cifarkit run --profile quick

# The newest finished run (run names start with their timestamp) as a website; nothing is re-executed.
book: $(STAMP)
	@summary=$$(ls runs/*/summary.json 2>/dev/null | sort | tail -n 1); \
	test -n "$$summary" || { echo "make book: no finished run under runs/ (make run first)" >&2; exit 1; }; \
	echo "+ $(PY) -m cifarkit book $$(dirname $$summary)"; \
	$(PY) -m cifarkit book "$$(dirname $$summary)"

# nbval executes each notebook once, in copies that papermill has parameterised (profile "quick",
# the same injection `cifarkit run` uses) and that carry the expected output of the
# `# NBVAL_CHECK_OUTPUT` cells. CIFARKIT_PROFILE=quick backs the injected parameter up.
NBVAL_DIR := build/nbval
NBVAL_ENV := CIFARKIT_PROFILE=quick CIFARKIT_HEADLESS=1 CIFARKIT_RESULTS_DIR=$(CURDIR)/$(NBVAL_DIR)/results
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 900

# The unit tests run in TEST_WORKERS processes (pytest-xdist): much of their time is spent waiting
# on subprocesses and kernels. The notebooks then run one at a time, in order (03 and 04 use what 01
# and 03 wrote), each with all the cores. Both parts always run; either failing fails the target.
TEST_WORKERS ?= 2

test: $(STAMP)
	rm -rf $(NBVAL_DIR) && $(PY) tests/nbval_prepare.py $(NBVAL_DIR)
	@unit=0; notebooks=0; \
	echo "+ $(PY) -m pytest tests -n $(TEST_WORKERS) $(PYTEST_ARGS)"; \
	$(PY) -m pytest tests -n $(TEST_WORKERS) $(PYTEST_ARGS) || unit=$$?; \
	echo "+ $(NBVAL_ENV) $(PY) -m pytest $(NBVAL_DIR) $(NBVAL_ARGS) $(PYTEST_ARGS)"; \
	$(NBVAL_ENV) $(PY) -m pytest $(NBVAL_DIR) $(NBVAL_ARGS) $(PYTEST_ARGS) || notebooks=$$?; \
	test $$unit -eq 0 -a $$notebooks -eq 0 || { echo "make test: unit tests exit $$unit, notebooks exit $$notebooks" >&2; exit 1; }

test-unit: $(STAMP)
	$(PY) -m pytest tests -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	rm -rf $(NBVAL_DIR) && $(PY) tests/nbval_prepare.py $(NBVAL_DIR)
	$(NBVAL_ENV) $(PY) -m pytest $(NBVAL_DIR) $(NBVAL_ARGS) $(PYTEST_ARGS)

# Playwright comes from the lock; the browser is Debian's Chromium (Playwright cannot download its
# own here). `make test` runs the browser test too, and skips it, saying why, without Chromium.
test-browser: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

# The declared floors, tested: requirements-oldest.txt pins every runtime and test requirement at
# the lowest version pyproject.toml admits (tests/test_packaging.py checks the two agree). Unit tests
# only: the notebooks' claims were sized on the locked versions.
OLDEST_VENV := .venv-oldest
OLDEST_STAMP := $(OLDEST_VENV)/.installed-$(shell cat requirements-oldest.txt pyproject.toml | sha256sum | cut -c1-12)

$(OLDEST_STAMP): requirements-oldest.txt pyproject.toml
	@test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -q -r requirements-oldest.txt
	$(OLDEST_VENV)/bin/python -m pip install -q --no-deps -e .
	@rm -f $(OLDEST_VENV)/.installed-*
	@touch $@

test-oldest: $(OLDEST_STAMP)
	$(OLDEST_VENV)/bin/python -m pytest tests -m "not browser" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build .pytest_cache
