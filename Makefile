# The two commands a new user needs: `make run` and `make test`. Only python3 and make required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: run serve test lint migrate bench bench-peer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_models
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py collectstatic --noinput -v 0

# Development server: DEBUG on unless set, SQLite unless DATABASE_URL is set.
run: export DEBUG ?= 1
run: migrate
	$(BIN)/uvicorn gateway.asgi:application --host $(HOST) --port $(PORT)

# Production server: gunicorn with uvicorn workers (ASGI). Needs SECRET_KEY; DEBUG off.
serve: migrate
	$(BIN)/gunicorn gateway.asgi:application -k uvicorn_worker.UvicornWorker \
		-w $(WORKERS) -b $(HOST):$(PORT) --access-logfile - --graceful-timeout 30

# Tests: SQLite and an in-process cache unless DATABASE_URL / REDIS_URL are set.
test: export SECRET_KEY ?= test-only-secret-key-0123456789abcdef-0123456789
test: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# Load benchmark (bench/, docs/performance.md): fake vendor, the gateway as `serve` runs it on
# PostgreSQL (database gateway_bench) + Redis, and LiteLLM when `make bench-peer` installed it.
bench: $(VENV)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The peer gateway, LiteLLM's proxy, in a venv of its own so its pins never touch ours.
PEER_VENV := .peer-venv
bench-peer:
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q --upgrade pip
	$(PEER_VENV)/bin/pip install -q "litellm[proxy]"
