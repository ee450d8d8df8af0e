# The two commands a newcomer needs: `make run` and `make test`.
# CPython 3.11: the distribution's own build where there is one, else python3 from PATH.
# Debian's is compiled with profile-guided and link-time optimisation, as is the
# python:3.11 image the service ships in (deploy/Dockerfile); a plain source build (what
# pyenv makes by default) ran the API's request path 10-25 % slower here, so tests and
# benchmarks on it would understate the deployed service. `make clean` to switch.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export APP_ENV ?= development

.PHONY: install run test test-unit test-integration test-e2e test-stops lint bench chaos clean services services-down

install: $(STAMP)

# Reinstall whenever the dependencies change. A distribution Python without its venv
# package cannot make one: python3 from PATH then.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV) || python3 -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/python deploy/dev_services.py
	$(BIN)/exchange-tokens migrate
	$(BIN)/exchange-tokens run-all

test: install
	$(BIN)/pytest

# Ctrl-C on `make run`, 50 times over: every stop must be prompt and clean (the usual
# test run does it 3 times).
test-stops: install
	RUN_ALL_STOP_RUNS=50 $(BIN)/pytest -q tests/e2e/test_run_all.py -k every_ctrl_c

# The tiers on their own. Unit: seconds, no server needed (PostgreSQL and RabbitMQ may be
# stopped). Integration: real PostgreSQL and RabbitMQ. End-to-end: the API and the
# workers as processes, the ops console in a browser, the image and the compose file.
test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

test-e2e: install
	$(BIN)/pytest tests/e2e tests/browser tests/containers

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy api workers cli shared schemas

# The local broker gets at runtime what deploy/rabbitmq/advanced.config gives a deployed
# one: a wider window for at-least-once dead-lettering, which the delay levels ride on.
# Best effort (needs rabbitmqctl and the right to use it); the bench reports the value.
bench: install
	-@rabbitmqctl eval 'application:set_env(rabbit, dead_letter_worker_consumer_prefetch, 512).' >/dev/null 2>&1
	$(BIN)/python -m bench $(BENCH_ARGS)

# Faults under load on a local three-node RabbitMQ and a replicated PostgreSQL (started and
# removed by the run, beside the machine's own servers; needs root for the nodes' user ids
# and iptables). Exit status 0 only when nothing was lost or doubled. docs/operations.md.
# CHAOS_ARGS="--short" is the form make test runs (tests/cluster/).
chaos: install
	$(BIN)/python -m chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# PostgreSQL and RabbitMQ in Docker, on 127.0.0.1 only, at the default URLs of `make run`
# (deploy/dev-services.yaml). The compose plugin when there is one, else docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
DEV_SERVICES := $(COMPOSE) -p exchange-tokens-dev -f deploy/dev-services.yaml

services:
	$(DEV_SERVICES) up -d
	@echo "waiting for PostgreSQL and RabbitMQ to be healthy"
	@for i in $$(seq 1 90); do \
	  [ "$$(docker inspect --format '{{.State.Health.Status}}' $$($(DEV_SERVICES) ps -q) 2>/dev/null | sort -u)" = healthy ] && exit 0; \
	  sleep 2; done; echo "not healthy after 3 minutes: $(DEV_SERVICES) logs" >&2; exit 1

services-down:
	$(DEV_SERVICES) down
