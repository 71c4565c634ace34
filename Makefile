# The two quick-start targets: `make demo` (set up, run the main job) and `make test` (set up, run every test).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup export clean-nbs docs check-docs

setup: $(STAMP)

# (Re)install when pyproject.toml changes; a repeat run reuses the environment.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: setup
	$(BIN)/bincount demo

# Every notebook as a test, then the repo checks and the docs site in a headless browser.
test: setup
	bash tools/test.sh

export: setup
	$(BIN)/nbdev-export

docs: setup
	$(BIN)/python tools/build_docs.py
