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

.PHONY: install run test test-unit test-integration test-e2e services services-down lint bench clean

install: $(STAMP)

# Reinstall whenever the dependencies change. A distribution Python without its venv
# package cannot make one: python3 from PATH then.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV) || python3 -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/exchange-tokens migrate
	$(BIN)/exchange-tokens run-all

test: install
	$(BIN)/pytest

# The tiers on their own. Unit: seconds, no server needed (PostgreSQL and RabbitMQ may be
# stopped). Integration: real PostgreSQL and RabbitMQ. End-to-end: the API and the
# workers as processes, and the ops console in a browser.
test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

test-e2e: install
	$(BIN)/pytest tests/e2e tests/browser

# PostgreSQL and RabbitMQ in Docker, ports on 127.0.0.1 only, where the settings'
# defaults look for them (deploy/services.yaml).
COMPOSE ?= docker compose
SERVICES := $(COMPOSE) -p exchange-tokens-services -f deploy/services.yaml

services:
	$(SERVICES) up -d --wait

services-down:
	$(SERVICES) down

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy api workers cli shared schemas

# The local broker gets at runtime what deploy/rabbitmq/advanced.config gives a deployed
# one: a wider window for at-least-once dead-lettering, which the delay levels ride on.
# Best effort (needs rabbitmqctl and the right to use it); the bench reports the value.
bench: install
	-@rabbitmqctl eval 'application:set_env(rabbit, dead_letter_worker_consumer_prefetch, 512).' >/dev/null 2>&1
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
