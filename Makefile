# One entry point for everything: `make demo` runs the system, `make test` proves it.
# Every target does its own set-up (virtualenv, Debian packages, Kafka jars), so a fresh clone needs nothing else.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m services.devstack

.PHONY: help setup models seed run stop status demo test test-unit test-integration lint format bench bench-stream up down clean \
	compose-check promcheck load-fraud

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -e '.[training,dev]'
	touch $@

.state/.bootstrapped: infra/bootstrap.sh infra/kafka/pom.xml
	infra/bootstrap.sh
	mkdir -p .state/logs && touch $@

setup: $(VENV)/.installed .state/.bootstrapped ## install everything: virtualenv, redis-server, promtool, Kafka jars

models: setup ## generate the synthetic worlds, train, export to ONNX, register and promote (< 2 min)
	$(PY) -m services.trainer

seed: run ## replay the worlds' history through Kafka into the online features (progress shown)
	$(PY) -m services.seeder

run: setup ## start the local stack in the background; returns when every part is healthy
	$(PY) -m services.trainer --if-missing
	$(STACK) run

stop: ## stop everything `make run` started
	@$(STACK) stop

status: ## what runs where, and is it healthy
	@$(STACK) status

demo: run ## run the system, seed it with the worlds' history, show it (grows with every design)
	$(PY) -m services.seeder
	@$(STACK) status

test: setup lint ## everything CI runs: lint, then unit and integration tests in one pytest run
	$(PY) -m pytest tests

test-unit: setup ## unit tests (fakes, no servers)
	$(PY) -m pytest tests/unit

test-integration: setup ## integration tests against real redis-server and Kafka started by the harness
	$(PY) -m pytest tests/integration

lint: setup ## ruff, mypy, gofmt and go vet
	$(VENV)/bin/ruff check services tests benchmarks load-tests
	$(VENV)/bin/mypy
	test -z "$$(gofmt -l tests/compose)"
	cd tests/compose && go vet .

compose-check: ## validate docker-compose.yml against the Compose spec with compose-go (no Docker needed)
	cd tests/compose && go run . ../../docker-compose.yml

promcheck: ## promtool: both Prometheus configs, the rules, the alert unit tests
	promtool check config infra/prometheus/prometheus.yml
	promtool check config infra/prometheus/prometheus.local.yml
	promtool test rules infra/prometheus/tests/platform_test.yml

format: setup ## apply ruff's formatting and import order
	$(VENV)/bin/ruff check --fix services tests benchmarks load-tests

bench: setup ## every latency benchmark on real servers: feature reads, model serving, ingest (reports/)
	$(PY) benchmarks/feature_store_read.py
	$(PY) benchmarks/model_serving.py
	$(PY) benchmarks/fraud_features_online.py
	$(PY) benchmarks/recs_features_online.py
	$(PY) benchmarks/ingest_latency.py

bench-stream: setup ## stream processor: event->feature freshness at 2,000 events/s, max events/s
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/stream_freshness.py
	$(PY) benchmarks/fraud_stream.py

LOAD_FRAUD_HOST ?= http://127.0.0.1:8040
LOAD_FRAUD_USERS ?= 50
LOAD_FRAUD_RPS ?= 500
LOAD_FRAUD_DURATION ?= 30s

load-fraud: run ## load test the fraud service (500 req/s, 30 s); fails if p99 > 50 ms or > 0.1% fail
	mkdir -p reports/load
	$(VENV)/bin/locust -f load-tests/fraud.py --headless --only-summary --host $(LOAD_FRAUD_HOST) \
		--users $(LOAD_FRAUD_USERS) --spawn-rate $(LOAD_FRAUD_USERS) --run-time $(LOAD_FRAUD_DURATION) \
		--target-rps $(LOAD_FRAUD_RPS) --csv reports/load/fraud --html reports/load/fraud.html

up: ## the same topology with Docker Compose (needs a Docker engine)
	docker compose up -d --wait

down: ## stop the Compose stack
	docker compose down

clean: stop ## remove local state (data dirs, logs); keeps the virtualenv and the Kafka jars
	rm -rf .state reports
