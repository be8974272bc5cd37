# The two commands a new user needs: `make run` and `make test`. Only python3 and make required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# Seconds a worker told to stop (a deploy, a restart) has to finish its requests before gunicorn
# kills it; calls still running 5 s before that are ended and billed for what they sent.
GRACEFUL_TIMEOUT ?= 30
# Every install takes its versions from this pip freeze of a working set (`make lock` rewrites it),
# so a new checkout, CI and a developer's venv run the same packages.
CONSTRAINTS := constraints.txt

.PHONY: install run serve test test-pg check lint lock migrate bench bench-peer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstalled when the declared dependencies or their pins change.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_models
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py collectstatic --noinput -v 0

# A development .env, written once and never overwritten: with DEBUG=1 and a SECRET_KEY of its
# own, `.venv/bin/python manage.py ...` works in this checkout as it does under `make run`.
.env:
	$(PYTHON) -c 'import secrets; print("# Written by make run for development (see .env.example).\nDEBUG=1\nSECRET_KEY=dev-" + secrets.token_urlsafe(40))' > $@

# Development server: DEBUG on unless set, SQLite unless DATABASE_URL is set.
# migrate runs in a sub-make so that .env exists before it reads the settings.
run: export DEBUG ?= 1
run: .env
	@$(MAKE) --no-print-directory migrate
	$(BIN)/uvicorn gateway.asgi:application --http gateway.server:HttpProtocol --host $(HOST) --port $(PORT)

# Production server: gunicorn with uvicorn workers (ASGI) that bound each request's headers
# (gateway/server.py). Needs SECRET_KEY; writes no .env. DEBUG is off unless set in the environment
# (a development .env saying DEBUG=1 does not turn it on), and it refuses to start with DEBUG on.
serve: export DEBUG ?= 0
serve: $(VENV)/.installed
	@$(BIN)/python -c 'import sys; from gateway.settings import DEBUG; sys.exit(DEBUG and "make serve: DEBUG is on; production runs with DEBUG=0 (use make run to develop)")'
	@$(MAKE) --no-print-directory migrate
	@# The workers' metrics, summed by /metrics (common/metrics.py): in a directory new to this start,
	@# so no count of an earlier run is added in.
	@# exec: the shell becomes gunicorn, so a signal to it (a deploy's SIGTERM) reaches the master.
	metrics_dir=$$(mktemp -d "$${TMPDIR:-/tmp}/gateway-metrics.XXXXXX") && \
	PROMETHEUS_MULTIPROC_DIR=$$metrics_dir exec $(BIN)/gunicorn gateway.asgi:application -k gateway.server.Worker \
		-w $(WORKERS) -b $(HOST):$(PORT) --access-logfile - --graceful-timeout $(GRACEFUL_TIMEOUT)

# Tests: SQLite and an in-process cache unless DATABASE_URL / REDIS_URL are set.
test: export SECRET_KEY ?= test-only-secret-key-0123456789abcdef-0123456789
test: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

# The same tests on the local PostgreSQL and Redis, as CI runs them (.ci/services starts them).
test-pg: export DATABASE_URL = postgres://postgres@127.0.0.1:5432/gateway_ci
test-pg: export REDIS_URL = redis://127.0.0.1:6379/15
test-pg: export SECRET_KEY ?= ci-secret-key-not-for-production
test-pg: $(VENV)/.installed
	bash .ci/services
	@$(MAKE) --no-print-directory test

# Static checks, as CI runs them. Every step runs, so one pass shows every failure. mypy's Django
# plugin imports the settings, which need a SECRET_KEY when DEBUG is off.
CHECKS := "ruff check ." "ruff format --check ." "mypy" \
	"python manage.py makemigrations --check --dry-run" "pytest -q tests/test_architecture.py"
check: export SECRET_KEY ?= check-only-secret-key-0123456789abcdef-0123456789
check: $(VENV)/.installed
	@failed=""; for step in $(CHECKS); do \
		echo "+ $$step"; PATH="$(CURDIR)/$(BIN):$$PATH" $$step || failed="$$failed\n  $$step"; \
	done; \
	if [ -n "$$failed" ]; then printf "make check: failed:$$failed\n"; exit 1; fi

lint: check

# Rewrites constraints.txt with the newest releases pyproject.toml allows, resolved in a fresh venv
# (so nothing left over in .venv is pinned). Run it with Python 3.11, the oldest we support: on
# 3.12+ it would pin Django 6, which 3.11 cannot install. Then `make check test-pg` before committing.
define LOCK_HEADER
# Pins for every install: `pip install -c constraints.txt -e ".[dev]"` (make, .ci/run).
# A pip freeze of a working install of `.[dev]`, without the project itself.
# Regenerate with `make lock` (the newest releases pyproject.toml allows); never edit by hand.
endef
export LOCK_HEADER
lock:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make lock: needs Python 3.11 (PYTHON=...)"; exit 1; }
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q -e ".[dev]"
	{ echo "$$LOCK_HEADER"; .lock-venv/bin/pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf .lock-venv

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
