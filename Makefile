# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed here, into .venv, from nothing but python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo
# the demo's clock: a Monday morning in January 2027
NOW    := 2027-01-04T15:00:00Z

.PHONY: demo test lint typecheck unit integration cli bench-import clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	touch $@

demo: $(VENV)/.base
	rm -rf $(DEMO)
	$(BIN)/dripper init $(DEMO)
	cd $(DEMO) && ../$(BIN)/dripper check
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) customers import customers.csv
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) event purchase ada@example.com --data '{"amount": 24.50}'
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) event purchase grace@example.com --data '{"amount": 18}'
	cd $(DEMO) && ../$(BIN)/dripper --now 2027-01-09T10:00:00Z event purchase ada@example.com --data '{"amount": 31}'
	cd $(DEMO) && ../$(BIN)/dripper --now $(NOW) event purchase new.buyer@example.com --data '{"amount": 12}'
	cd $(DEMO) && ../$(BIN)/dripper customers show ada@example.com
	@echo
	@echo "Demo project in ./$(DEMO): edit campaigns/*.yaml and templates/, then 'dripper check'."

test: lint typecheck
	$(BIN)/pytest -q

lint: $(VENV)/.test
	$(BIN)/ruff check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

unit: $(VENV)/.test
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.test
	$(BIN)/pytest -q tests/integration

cli: $(VENV)/.test
	$(BIN)/pytest -q tests/cli

bench-import: $(VENV)/.base
	$(BIN)/python bench/import_customers.py

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache
