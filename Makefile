# make serve / make test work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv serve test bench lint clean

venv: $(STAMP)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: venv
	$(BIN)/synapsex serve

test: venv
	$(BIN)/python -m pytest -q -n 2

bench: venv
	$(BIN)/python bench/actor_ask.py
	$(BIN)/python bench/tenant_create.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/event_bus.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/telemetry_overhead.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data .pytest_cache
