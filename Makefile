# Thrive — recognition and kudos at work. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
# uv from PATH, else the one pip installs (runnable as a module wherever pip put it).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
BENCH ?=
PYTEST_ARGS ?=

.PHONY: help install stack-up stack-down stack-status run test test-fast lint format bench contracts schema

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

install: ## Install uv (if missing) and the locked Python dependencies into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

stack-up: install ## Start real Kafka and PostgreSQL locally (idempotent)
	@$(UV) run python -m thrive_shared.devstack up

stack-down: install ## Stop Kafka and PostgreSQL (data is kept under .devstack/)
	@$(UV) run python -m thrive_shared.devstack down

stack-status: install ## Show what runs where
	@$(UV) run python -m thrive_shared.devstack status

run: install ## Start the whole platform with demo data; Ctrl-C stops it
	@$(UV) run python -m thrive_shared.platform run

test: install ## Run every test against real Kafka and PostgreSQL (started if needed)
	@$(UV) run python -m thrive_shared.devstack up
	@$(UV) run pytest $(PYTEST_ARGS)

test-fast: install ## Tests that need no Kafka/PostgreSQL
	@$(UV) run pytest -m "not stack and not browser" $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy shared/src services/recognition/src services/notifier/src services/leaderboard/src services/gateway/src

format: install ## Apply ruff's formatting and safe fixes
	@$(UV) run ruff format .
	@$(UV) run ruff check --fix .

bench: install ## Run benchmarks (all, or one: make bench BENCH=ceiling); results in tests/bench/results/
	@$(UV) run python -m thrive_shared.devstack up
	@$(UV) run python tests/bench/run.py $(BENCH)

contracts: install ## Regenerate JSON Schemas and the AsyncAPI document under shared/contracts/
	@$(UV) run python -m thrive_shared.contracts export

schema: install ## Regenerate the gateway's committed GraphQL SDL
	@$(UV) run thrive-gateway export-schema
