# Two commands on a fresh machine: `make run` and `make test` (SPEC §3).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test bench lint migrate check-config demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/router serve

# Tests run in two worker processes (pytest-xdist), each with its own embedded PostgreSQL: most of a
# test's time is waiting on sockets and the database, so two workers fit the 10-minute budget.
test: install
	$(BIN)/python -m pytest -q -n 2

# The same suite on Debian's PostgreSQL 15, which the tests start themselves (tests/pgserver.py), and
# PgBouncer in front of it: SPEC §4, "passes on an external PostgreSQL 15 server". Needs the Debian
# packages postgresql-15 and pgbouncer (.ci/run installs them).
.PHONY: test-pg15
test-pg15: install
	ROUTER_TEST_PG=debian15 $(BIN)/python -m pytest -q -n 2

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check router channels agents sla tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

migrate: install
	$(BIN)/router migrate

check-config: install
	$(BIN)/router check-config $(FILE)

demo: install
	$(BIN)/router demo

clean:
	rm -rf $(VENV) build *.egg-info
