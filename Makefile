# Two entry points for a fresh machine with only python3 and make:
#   make plan  - create .venv if missing, install moeplan, plan the bundled default scenario
#                (package data: planner/scenarios_bundled/deepseek_v3_h200_16.yaml; then run .venv/bin/moeplan)
#   make test  - the same set-up with test extras, then ruff and the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: plan test lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

plan: venv
	$(BIN)/moeplan plan

lint: venv
	$(BIN)/ruff check planner cost_models tests benchmarks

test: venv lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
