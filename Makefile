# leadflow: `make run` starts everything on this machine, `make test` runs the whole suite
# (fault tests included), `make test-fast` the unit tests alone (no broker, no database
# server, no network).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_PG_URL ?= postgresql+psycopg://leadflow:leadflow@127.0.0.1:5432/postgres

export LEADFLOW_DATABASE_URL ?= sqlite:///var/leadflow.db

.PHONY: run test test-fast test-faults lint bench install rabbitmq postgres test-tools bench-tools clean

# Install Debian package $(2) when command $(1) is missing.
define need
	@command -v $(1) >/dev/null 2>&1 || { echo "installing $(2)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }
endef

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { echo "installing python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# RabbitMQ: installed from Debian when missing, started when stopped.
rabbitmq:
	@command -v rabbitmq-server >/dev/null 2>&1 || { \
	  echo "installing rabbitmq-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; }
	@rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { \
	  echo "starting rabbitmq"; \
	  (rabbitmq-server -detached >/dev/null 2>&1 || true); \
	  for i in $$(seq 1 240); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	  rabbitmqctl -q await_startup --timeout 120 >/dev/null || { \
	    tail -n 40 /var/log/rabbitmq/*.log 2>/dev/null; exit 1; }; }

# PostgreSQL: installed from Debian when missing (its package makes a cluster), the first
# cluster started when down, a role that may create test databases.
postgres:
	@command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters --no-header | grep -q . || { \
	  echo "installing postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@pg_lsclusters --no-header | grep -q online || \
	  pg_ctlcluster $$(pg_lsclusters --no-header | awk 'NR == 1 {print $$1, $$2}') start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
	@runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='leadflow'" | grep -q 1 || \
	  runuser -u postgres -- psql -qc "CREATE ROLE leadflow LOGIN PASSWORD 'leadflow' CREATEDB"

run: install rabbitmq
	$(BIN)/leadflow db upgrade
	$(BIN)/leadflow config apply deploy/example.yaml
	@echo "console: http://127.0.0.1:$${LEADFLOW_CONSOLE_PORT:-8082}/  (first user:"\
	  "$(BIN)/leadflow users add NAME --role operator [--password PW])"
	@$(BIN)/python deploy/demo_recipient.py & demo=$$!; \
	  trap "kill $$demo 2>/dev/null" EXIT; \
	  $(BIN)/leadflow up

# docker-compose for the deployment test; Debian's Chromium for the console's browser tests
# (Playwright's own browser download is not reachable here).
test-tools:
	$(call need,docker-compose,docker-compose)
	$(call need,chromium,chromium)

bench-tools:
	$(call need,wrk,wrk)
	$(call need,ab,apache2-utils)

# The browser tests run alone (Playwright keeps an event loop in pytest's main thread);
# the fault tests last, alone (they stop RabbitMQ and kill processes).
test: install rabbitmq postgres test-tools
	$(BIN)/pytest tests -q --ignore=tests/faults
	$(BIN)/pytest tests/e2e/test_console.py -q
	LEADFLOW_TEST_DATABASE_URL=$(TEST_PG_URL) $(BIN)/pytest tests -q --ignore=tests/faults
	LEADFLOW_TEST_DATABASE_URL=$(TEST_PG_URL) $(BIN)/pytest tests/e2e/test_console.py -q
	$(BIN)/pytest tests/faults -q -s

test-fast: install
	$(BIN)/pytest tests/unit -q -p no:cacheprovider

# Fault tests kill processes and stop RabbitMQ for the whole machine: run them alone.
test-faults: install rabbitmq postgres
	$(BIN)/pytest tests/faults -q -s

lint: install
	$(BIN)/ruff check services shared tests bench deploy
	$(BIN)/mypy services shared tests bench

bench: install rabbitmq postgres bench-tools
	$(BIN)/python -m bench.run

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
