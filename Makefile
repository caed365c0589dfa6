# The two commands of the README's quick start. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup bench lint clean

$(BIN)/boardnet: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,plot]'
	touch $@

# the virtual MicroPython board (the official WebAssembly build), from the committed lock file
SIM := host/boardnet/virtual/node
$(SIM)/node_modules/.package-lock.json: $(SIM)/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix $(SIM) --no-audit --no-fund; \
	else echo "npm not found: the virtual MicroPython board needs Node.js 18+ and npm"; fi

setup: $(BIN)/boardnet $(SIM)/node_modules/.package-lock.json

demo: setup
	$(BIN)/boardnet demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py

lint: setup
	$(BIN)/ruff check host tests bench

clean:
	rm -rf $(VENV) build dist
