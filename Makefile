# The two quick-start targets: `make demo` (set up, run the main job) and `make test` (set up, run every test).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup export lint clean-nbs docs check-docs browser

# Create .venv and install the package with its dev tools; a repeat run reuses the environment, and reinstalls only
# when pyproject.toml's content changed (a hash, not its mtime: nbdev-export rewrites the file unchanged).
setup:
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  set -e; test -x $(BIN)/python || $(PY) -m venv $(VENV); \
	  echo "Installing bincount and its dependencies into $(VENV) (a few minutes the first time)"; \
	  $(BIN)/python -m pip install -q --upgrade pip; \
	  $(BIN)/python -m pip install -q -e '.[dev]'; \
	  $(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null; \
	  echo "$$want" > $(STAMP); \
	fi

demo: setup
	$(BIN)/bincount demo

# Headless Chromium for the docs site check: Debian's package (CI runs as root; sudo otherwise), skipped when present.
browser:
	@test -x /usr/bin/chromium || { S=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$S apt-get update -q && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Every notebook as a test, then the repo checks and the docs site in a headless browser.
test: setup browser
	bash tools/test.sh

export: setup
	$(BIN)/nbdev-export

lint: setup
	$(BIN)/ruff check bincount

# The docs site in _docs/ (offline: nbdev's processing + pandoc; `nbdev-docs` does the same with Quarto) and README.md.
docs: setup
	$(BIN)/python tools/build_docs.py

check-docs: docs browser
	$(BIN)/python tools/check_docs.py
