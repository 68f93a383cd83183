# channelhub: `make demo` runs the platform with demo data, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo serve test lint typecheck imports unit bench clean

help: ## Show what each target does
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

demo: $(STAMP) ## Migrate an SQLite database under ./var, seed the demo bank, serve on :8000
	$(BIN)/channelhub demo --data-dir var

test: $(STAMP) lint typecheck imports ## Lint, type-check, check layers, run the whole test suite
	$(BIN)/pytest

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: $(STAMP) ## mypy --strict over src and tests
	$(BIN)/mypy

imports: $(STAMP) ## import-linter: the layer rules of DESIGN.md
	$(BIN)/lint-imports

bench: $(STAMP) ## The kernel benchmark (SQLite and, if reachable, PostgreSQL)
	$(BIN)/python bench/kernel.py

clean: ## Remove the virtual environment and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
