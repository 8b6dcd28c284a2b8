# make run  - serve the API at http://127.0.0.1:8000/graphql on a local SQLite file
# make test - run the whole test suite (SQLite; PostgreSQL too when GROUPS_API_TEST_DATABASE_URL is set)
# make lint - ruff (lint and format check) on everything, mypy on every product package (configured in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test venv lint clean

$(BIN)/groups-api: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(BIN)/groups-api

run: venv
	$(BIN)/groups-api serve

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
