# The README's two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-dev lint typecheck clean

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

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/rollout demo

typecheck: install-dev
	$(BIN)/mypy

test: install-dev typecheck
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .rollout .pytest_cache .mypy_cache .hypothesis
