# chaosdrill: two commands on a fresh machine — `make drill` and `make test`.
# Every target installs what it needs first, idempotently (a second run installs nothing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: drill test test-e2e test-slow test-compose compose-up compose-drill compose-down bench lint deps deps-apt clean help
help:
	@echo "make drill   install, run the default drill (db_outage) on the local environment, print the report path"
	@echo "make test    install, run the test suite (without the slow end-to-end slice)"
	@echo "make test-e2e  install, run the slow end-to-end slice"
	@echo "make test-slow  install, run the slow end-to-end slice (the whole S3 corruption matrix)"
	@echo "make bench   install, run the benchmarks (tables + bench/results/)"
	@echo "make compose-up     start docker-compose.chaos.yml on local images (host networking, loopback), wait healthy"
	@echo "make compose-drill  up, run db_outage and cache_outage against it (chaosdrill.compose.toml), down"
	@echo "make compose-down   stop the stack, remove its containers and volumes"
	@echo "make test-compose   install, the end-to-end tests of the compose stack on a real Docker engine"
	@echo "make lint    ruff"

NODE_CLIENT := $(VENV)/npm/node_modules/toxiproxy-node-client

deps: deps-apt $(STAMP) $(NODE_CLIENT)

# A Toxiproxy client from another language, for the compatibility test; deps-apt installs node and npm.
$(NODE_CLIENT): | $(STAMP) deps-apt
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/npm toxiproxy-node-client@4.1.0 >/dev/null; \
	else echo "npm not found: skipping toxiproxy-node-client (its test will skip)"; fi

deps-apt:
	@scripts/install-deps.sh docker.io docker-compose busybox

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

drill: deps
	@$(BIN)/chaosdrill run -m db_outage

test: deps
	@$(BIN)/python -m pytest tests -q -m "not e2e" --durations=15

# The slow end-to-end slice (tests/conftest.py E2E_FILES: restore tests, stop conditions, repeats,
# CI templates, evidence in Chromium and S3, Locust workers); CI runs it after `make test`.
test-e2e: deps
	@$(BIN)/python -m pytest tests -q -m e2e --durations=10

# Slower end-to-end slice, kept out of `make test` (its budget is 20 min): tests that read
# CHAOSDRILL_SLOW_TESTS=1 run their whole matrix (e.g. every file class x damage in S3, ~25 s each on moto).
test-slow: deps
	@CHAOSDRILL_SLOW_TESTS=1 $(BIN)/python -m pytest tests/integration/backup/test_corruption_matrix.py -q -k s3

# The drills on a container stack (docker-compose.chaos.yml + docker-compose.chaos.local.yml: images built
# here with `docker import`, host networking, every port on 127.0.0.1). Compose: Debian's docker-compose 1.29.
COMPOSE_LOCAL := scripts/compose-local.sh

compose-up: deps
	@$(COMPOSE_LOCAL) up

compose-drill: deps
	@$(COMPOSE_LOCAL) up; rc=0; \
	for m in db_outage cache_outage; do $(BIN)/chaosdrill run -c chaosdrill.compose.toml -m $$m || rc=$$?; done; \
	$(COMPOSE_LOCAL) down; exit $$rc

compose-down:
	@$(COMPOSE_LOCAL) down

# The whole compose stack end to end (~3 min: up, db_outage, cache_outage, S3 drill, harness killed
# mid-run + cleanup, down + leftovers); `make test` checks only the files (compose config). CI runs both.
test-compose: deps
	@CHAOSDRILL_COMPOSE_TESTS=1 $(BIN)/python -m pytest tests/integration/compose -q

bench: deps
	@$(BIN)/python bench/run_all.py

lint: deps
	@$(BIN)/ruff check resilience harness reports scenarios tests bench

clean:
	rm -rf $(VENV) chaosdrill-results
