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

setup: $(BIN)/boardnet

demo: setup
	$(BIN)/boardnet demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py

lint: setup
	$(BIN)/ruff check host tests bench

clean:
	rm -rf $(VENV) build dist
