# The few verbs a newcomer needs. Everything installs what it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
INFRA_ENV = eval "$$(bash deploy/infra.sh env)"

include deploy/infra.mk

.PHONY: help bootstrap run test test-unit lint format bench

help:
	@echo "make run     start the infrastructure, the five services and a demo workspace"
	@echo "make test    start the infrastructure and run unit, integration and e2e tests"
	@echo "make bench   run the benchmarks; figures in .bench/latest.json"
	@echo "make lint    ruff and mypy --strict"
	@echo "make infra / infra-stop / infra-status   the local RabbitMQ, FerretDB, Dovecot, SMTP"

bootstrap:
	@bash deploy/bootstrap.sh

run: bootstrap infra
	@$(INFRA_ENV) && uv run --no-sync python -m mailsync_devtools.run

test: bootstrap infra
	@$(INFRA_ENV) && uv run --no-sync pytest $(PYTEST_ARGS)

test-unit: bootstrap
	@bash deploy/infra.sh tools
	@uv run --no-sync pytest tests/unit $(PYTEST_ARGS)

lint: bootstrap
	uv run --no-sync ruff check .
	uv run --no-sync ruff format --check .
	uv run --no-sync mypy shared/src services/*/src deploy/devmail/src deploy/devtools/src bench tests

format: bootstrap
	uv run --no-sync ruff format .
	uv run --no-sync ruff check --fix .

bench: bootstrap infra
	@$(INFRA_ENV) && uv run --no-sync python -m bench
