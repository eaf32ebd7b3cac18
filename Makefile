# Two entry points for a fresh machine with only python3 and make:
#   make plan  - create .venv if missing, install moeplan, plan the bundled default scenario
#                (package data: planner/scenarios_bundled/deepseek_v3_h200_16.yaml; then run .venv/bin/moeplan)
#   make test  - the same set-up with test extras, the engine wheels (make engines), then ruff and the whole suite
#   make engines - SGLang 0.5.5 and vLLM 0.11.0 (no dependencies; ~440 MB, kept in pip's cache) plus the pinned
#                pure-Python packages their parsers import, into .venv/engines: tests/test_engine_parsers.py
#                runs the engines' own parsers on every emitted launch line
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: plan test lint venv engines clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

ENGINES := $(VENV)/engines
ENGINE_REQS := tests/engine_parsers/requirements-engines.txt tests/engine_parsers/requirements-deps.txt

$(ENGINES)/.installed: $(BIN)/python $(ENGINE_REQS)
	rm -rf $(ENGINES)
	$(BIN)/python -m pip install --quiet --no-deps --target $(ENGINES) $(addprefix -r ,$(ENGINE_REQS))
	touch $@

engines: $(ENGINES)/.installed

plan: venv
	$(BIN)/moeplan plan

lint: venv
	$(BIN)/ruff check planner cost_models tests benchmarks

test: venv lint engines
	MOEPLAN_REQUIRE_ENGINES=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
