# Quick start: `make run` (embedded hub on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-sqlite worker clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tributary needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	@echo "Tributary (embedded: SQLite file tributary.db, in-process jobs, config hub.example.yaml)"
	@echo "  health:   curl http://$(HOST):$(PORT)/healthz"
	@echo "  webhooks: POST http://$(HOST):$(PORT)/webhooks/<connector>  (see README, 'Connectors')"
	@echo "  inbox:    HUB_CONFIG=hub.example.yaml $(BIN)/hub inbox stats"
	@echo "  stop:     Ctrl-C"
	HUB_CONFIG=$${HUB_CONFIG:-hub.example.yaml} $(BIN)/hub serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-sqlite: install
	HUB_TEST_DATABASE_URL=sqlite:// $(BIN)/python -m pytest $(PYTEST_ARGS)

worker: install
	$(BIN)/hub worker

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache tributary.db tributary.db-*
