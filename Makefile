# Two commands for a newcomer: `make run` and `make test`. Everything they need is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
RUECKHALT_DATA_DIR ?= var
BENCH_SECONDS ?= 20
export PORT RUECKHALT_DATA_DIR

# Debian packages the tests use, never stand-ins: PostgreSQL, Redis, Chromium, nginx as the proxy in front, and
# prometheus for its promtool (the alert rules are checked by it, tests/observability).
TEST_APT_PACKAGES := postgresql redis-server chromium nginx prometheus
# Debian packages the benchmarks add: wrk, the C load generator of bench-intake (a Python client on the same two
# cores would cost as much CPU per request as the server it measures).
BENCH_APT_PACKAGES := wrk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The suite runs on pytest-xdist workers, one test module at a time each (tests/support/parallel.py: the
# browser tests together on one worker, the longest modules first). Every worker has its own PostgreSQL,
# Redis and live server. Much of the suite waits (on those, on SMTP, Chromium and sleeps), so a worker more
# than the two cores pays; `make test TEST_WORKERS=1` runs it in one process, in file order.
TEST_WORKERS ?= 4
PYTEST_PARALLEL := $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

.PHONY: run test test-fast install install-test apt-test-deps apt-bench-deps lint typecheck audit lock check bench bench-report bench-memory bench-intake bench-profile bench-intake-engines bench-login bench-uploads bench-backup bench-notify bench-scaleout bench-dashboard bench-statistics faults policy-test clean apt-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test apt-test-deps

apt-test-deps:
	@$(MAKE) --no-print-directory apt-packages APT_PACKAGES="$(TEST_APT_PACKAGES)"

apt-bench-deps:
	@$(MAKE) --no-print-directory apt-packages APT_PACKAGES="$(BENCH_APT_PACKAGES)"

apt-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## Serve the embedded default (SQLite, demo data) on http://127.0.0.1:$(PORT)
run: install
	RUECKHALT_DEMO=true $(BIN)/rueckhalt migrate
	RUECKHALT_DEMO=true $(BIN)/rueckhalt demo
	RUECKHALT_DEMO=true exec $(BIN)/rueckhalt up --port $(PORT)

## Everything: lint, types, the policy examples, and the whole suite on SQLite and PostgreSQL (in parallel)
test: install-test
	$(BIN)/ruff check service workers tests bench tools
	$(BIN)/mypy
	$(MAKE) --no-print-directory audit
	$(BIN)/rueckhalt policy check --offline
	$(BIN)/rueckhalt policy test
	@# Line coverage of service/ and workers/ (in-process; pyproject's [tool.slipcover], tools/line_coverage.py).
	$(BIN)/python -m tools.line_coverage -m pytest -p no:cacheprovider $(PYTEST_PARALLEL) --durations=20 $(PYTEST_ARGS)
	$(BIN)/python -m tools.line_coverage --check

test-fast: install-test
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_PARALLEL) -m "not browser and not slow" $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check service workers tests bench tools
	$(BIN)/ruff format --check service workers tests bench tools

typecheck: install-test
	$(BIN)/mypy

## Security checks: bandit on our code (fails on medium and high findings), known vulnerabilities in the
## pinned production dependencies (requirements/production.txt, what the image installs)
audit: install-test
	$(BIN)/bandit -q -c pyproject.toml -r service workers tools -ll
	$(BIN)/python tools/audit.py

## Pin the production dependencies with hashes after changing [project].dependencies in pyproject.toml
lock: install-test
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  -o requirements/production.txt pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  -o requirements/build.txt requirements/build.in

policy-test: install
	$(BIN)/rueckhalt policy test

## Benchmarks (PostgreSQL, loopback only); figures printed and written to bench/results/
bench: install-test apt-bench-deps
	-$(MAKE) -k --no-print-directory bench-intake bench-login bench-uploads bench-notify bench-memory bench-scaleout faults
	$(BIN)/python -m bench.report

bench-report: install-test
	$(BIN)/python -m bench.report

bench-memory: install-test
	$(BIN)/python -m bench.memory --seconds $(BENCH_SECONDS)

# wrk drives the rate (closed loop at 16 and 32 connections, then paced at half the intake's maximum).
bench-intake: install-test apt-bench-deps
	$(BIN)/python -m bench.intake --seconds $(BENCH_SECONDS)

# Where an intake report's CPU goes, by part (py-spy samples one api worker while wrk drives it; docs/intake-cost.md)
bench-profile: install-test apt-bench-deps
	$(BIN)/python -m bench.profile_intake --seconds $(BENCH_SECONDS)

# The intake on the event loop's engine against the same intake in the thread pool (one run, wrk)
bench-intake-engines: install-test apt-bench-deps
	$(BIN)/python -m bench.intake_engines --seconds $(BENCH_SECONDS)

bench-login: install-test
	$(BIN)/python -m bench.login_flood --seconds $(BENCH_SECONDS)

# JSON intake p99 on one event loop while large images arrive and are cleaned (target < 100 ms).
bench-uploads: install-test
	$(BIN)/python -m bench.uploads_loop --seconds $(BENCH_SECONDS)

# The restore drill: backup and verified restore of N cases with files on PostgreSQL (docs/backup.md).
bench-backup: install-test
	$(BIN)/python -m bench.backup_restore --cases $${BENCH_CASES:-1000}

bench-notify: install-test
	$(BIN)/python -m bench.notify --seconds $(BENCH_SECONDS)

# One api process and worker, then two of each on one PostgreSQL and Redis: intake rate and ratio, each
# notification delivered once, rate limits holding across processes (exits 1 if a guarantee breaks).
bench-scaleout: install-test
	$(BIN)/python -m bench.scaleout --seconds $(BENCH_SECONDS)

# The fault matrix: Redis, worker, SMTP, PostgreSQL and webhook faults under load on the real processes;
# prints the table, writes bench/results/faults.json, exits 1 unless 0 lost and 0 duplicated.
faults: install-test
	$(BIN)/python -m bench.faults --seconds $(BENCH_SECONDS)

# 1,000,000 extract rows on PostgreSQL: public release, snapshot, coordinator and public pages.
bench-dashboard: install-test
	$(BIN)/python -m bench.dashboard

# Pure Python (no services): generator, DP release and the dashboard gate on a full synthetic year.
bench-statistics: install-test
	$(BIN)/python -m bench.statistics_engine

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
