# The README's two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-aws test suite test-nightly install install-dev lint typecheck browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

# The runtime: enough for the rollout CLI and its demo.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Everything the tests need: the CLI, the Pulumi SDK for the stacks, moto, cedarpy, hypothesis, mypy.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[stacks,dev]"
	touch $(VENV)/.installed $@

# The runtime plus moto, for the demo through the AWS code path against AWS emulated on loopback.
$(VENV)/.installed-aws-local: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[aws-local]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/rollout demo

demo-aws: $(VENV)/.installed-aws-local
	$(BIN)/rollout demo --aws-local

typecheck: install-dev
	$(BIN)/mypy

# Headless Chromium (Debian's package) and a Japanese font, for the tests that open the HTML report in
# a browser; installed only when missing (sudo when not root).
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium
	@fc-list :lang=ja 2>/dev/null | grep -q . || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-ipafont-gothic; }

# The suite runs on every core (pytest-xdist); an idle worker steals queued tests from a busy one
# (--dist worksteal), so a few long tests do not leave one core working alone at the end.
# mypy runs beside the suite (make -j2), so its minute of one core overlaps the tests.
TEST_WORKERS ?= auto
test: install-dev browser
	$(MAKE) --no-print-directory -j2 typecheck suite

suite: install-dev browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# Also the exhaustive variants (marker nightly), for the scheduled workflow.
test-nightly: install-dev typecheck browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "nightly or not nightly"

clean:
	rm -rf $(VENV) .rollout .pytest_cache .mypy_cache .hypothesis
