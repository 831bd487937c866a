# One entry point for everything: `make demo` runs the system, `make test` proves it.
# Every target does its own set-up (virtualenv, Debian packages, Kafka jars), so a fresh clone needs nothing else.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m services.devstack

.PHONY: help setup models seed rebuild-online run run-cluster stop status demo test test-unit test-integration chaos lint format bench bench-stream bench-stream-turns bench-stream-cores bench-cluster bench-stream-io bench-fraud-replay bench-kafka bench-recs-memory bench-peers bench-lake docs-numbers up down clean \
	advisory-db audit-online soak compose-check promcheck retrain-fraud shadow-report shadow-run drift-fraud drift-recs drift-fraud-stack bench-fraud-shadow bench-fraud-retrain-dev analytics lake-compact load-fraud load-recs load load-freshness load-report load-sweep load-sweep-floor ab-demo retrain-ranker catalog \
	movielens-check

# DATASET=movielens (or MLSD_DATASET in the environment): the recommender learns from, is seeded
# with and is checked on MovieLens 100k instead of the synthetic viewing world
ifdef DATASET
export MLSD_DATASET := $(DATASET)
endif
MOVIELENS := $(filter movielens,$(MLSD_DATASET))

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# MovieLens 100k ships inside this wheel; --no-deps keeps torch out (the trainer only reads its data files)
MOVIELENS_WHEEL := recbole==1.2.1

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -e '.[training,dev]'
	$(VENV)/bin/pip install --quiet --no-deps $(MOVIELENS_WHEEL)
	touch $@

.state/.bootstrapped: infra/bootstrap.sh infra/kafka/pom.xml
	infra/bootstrap.sh
	mkdir -p .state/logs && touch $@

setup: $(VENV)/.installed .state/.bootstrapped ## install everything: virtualenv, redis-server, PostgreSQL, promtool, Kafka jars

models: setup ## generate the synthetic worlds, train, export to ONNX, register and promote (< 2 min); DATASET=movielens; SOURCE=lake: the fraud model (make retrain-fraud's code) and the ranker (retrain-ranker's) from the lake, each registered only past its gate, unpromoted (PROMOTE=1: a winning fraud model promoted)
	$(PY) -m services.trainer $(if $(DATASET),--dataset $(DATASET)) $(if $(SOURCE),--source $(SOURCE) \
		$(if $(PROMOTE),--promote) $(if $(AS_OF),--as-of $(AS_OF)))

retrain-fraud: setup ## a fraud challenger from the lake's decisions and labels (label-delay protocol), registered only if it beats production on the same held-out week; PROMOTE=1 promotes a winner
	$(PY) -m services.trainer.fraud_retrain $(if $(PROMOTE),--promote) $(if $(AS_OF),--as-of $(AS_OF))

shadow-report: setup ## production against the shadow challenger (MLSD_FRAUD_SHADOW_VERSION) on the same transactions, labelled as of now, from the lake
	$(PY) -m services.trainer.fraud_shadow_report

seed: run ## replay the worlds' history through Kafka into the online features (progress shown); DATASET=movielens
	$(PY) -m services.seeder

rebuild-online: run ## after Redis was lost: online features and profiles again from PostgreSQL and the Kafka topics
	$(PY) -m services.seeder --rebuild-online

run: setup ## start the local stack in the background; returns when every part is healthy
	$(PY) -m services.trainer --if-missing
	$(STACK) run

catalog: setup ## load a catalog file (FILE=titles.csv|.jsonl|.parquet) onto the catalog topic; bad rows by line
	@test -n "$(FILE)" || { echo "usage: make catalog FILE=path/to/titles.csv (or .jsonl, .parquet)"; exit 2; }
	$(PY) -m services.catalog_etl $(FILE)

analytics: setup ## reports from the lake in SQL (DuckDB): A/B results, fraud, engagement, catalog, with plots (reports/analytics/)
	$(PY) -m services.analytics --out reports/analytics

lake-compact: setup ## merge each closed hour's small Parquet files of the lake into one (the sink also does it every 5 min)
	$(PY) -m services.lake compact

run-cluster: setup ## the same services on 3 Kafka brokers (RF 3, SASL/SCRAM for every client), a 6-node Redis Cluster with a password and a PostgreSQL primary with a synchronous standby (docs/reliability.md)
	$(PY) -m services.trainer --if-missing
	$(STACK) run-cluster

stop: ## stop everything `make run` or `make run-cluster` started
	@$(STACK) stop

status: ## what runs where, and is it healthy
	@$(STACK) status

demo: run ## everything: set up, train, start, seed, A/B closed loop, short load tests, summary; DATASET=movielens: the online check instead of the A/B loop
	$(PY) -m services.seeder
	$(MAKE) --no-print-directory $(if $(MOVIELENS),movielens-check,ab-demo)
	-$(MAKE) --no-print-directory load LOAD_FRAUD_RPS=$(DEMO_FRAUD_RPS) LOAD_RECS_RPS=$(DEMO_RECS_RPS) \
		LOAD_FRAUD_DURATION=$(DEMO_LOAD_DURATION) LOAD_RECS_DURATION=$(DEMO_LOAD_DURATION)
	@$(STACK) status
	@$(STACK) summary

AB_OUT ?= reports/ab-loop

retrain-ranker: setup ## the ranker retrained on logged impressions and clicks from the lake; registered (not promoted) only if it beats production on later lists
	$(PY) -m services.trainer.ranker_from_lake

ab-demo: run ## the model loop (~3 min): baseline traffic, retrain from the lake, A/B challenger vs production, verdict, promote (AB_OUT=docs/evaluation to update the page)
	$(PY) -m services.simulator.loop --out $(AB_OUT)

ONLINE_REPORT_DIR ?= reports/online

movielens-check: ## MovieLens: the running service's recall@10 for the held-out users beside the offline figure (ONLINE_REPORT_DIR=docs/evaluation to update the page)
	MLSD_DATASET=movielens $(PY) -m services.trainer.online_check --report-dir $(ONLINE_REPORT_DIR)

test: setup lint ## everything CI runs: lint, then unit and integration tests in one pytest run (the cluster subset included, make chaos not)
	$(PY) -m pytest tests --ignore=tests/chaos

test-unit: setup ## unit tests (fakes, no servers)
	$(PY) -m pytest tests/unit

test-integration: setup ## integration tests against real redis-server and Kafka started by the harness
	$(PY) -m pytest tests/integration

CHAOS_REPORT_DIR ?= reports/chaos

chaos: setup ## faults on the cluster topology under load: broker kill, Redis master kill, worker kill, slow Redis and model server, poison events, PostgreSQL primary kill; the autoscaler's load step (a few minutes; CHAOS_REPORT_DIR=benchmarks/results/chaos to commit the reports)
	@# pytest makes its --basetemp but not the folders above it: a fresh clone has no reports/
	mkdir -p reports/chaos
	MLSD_CHAOS_REPORT_DIR=$(CHAOS_REPORT_DIR) $(PY) -m pytest tests/chaos -m "not soak" --basetemp=reports/chaos/work

SOAK_S ?= 600
SOAK_FAULTS ?= 1
soak: setup ## fault 6: SOAK_S seconds (600) of load with a broker, a Redis master and service workers killed on a schedule (SOAK_FAULTS=0: none); availability share, every miss with what went on around it, and a plot in reports/chaos/
	mkdir -p reports/chaos
	MLSD_SOAK_S=$(SOAK_S) MLSD_SOAK_FAULTS=$(SOAK_FAULTS) MLSD_CHAOS_REPORT_DIR=$(CHAOS_REPORT_DIR) $(PY) -m pytest tests/chaos -m soak --timeout $$(( $(SOAK_S) + 600 )) --basetemp=reports/chaos/work

lint: setup ## ruff, mypy, the layering contracts (import-linter, CONTRIBUTING.md), the dependency audit (offline), gofmt and go vet
	$(VENV)/bin/ruff check services tests benchmarks load-tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m services.devstack.audit
	test -z "$$(gofmt -l tests/compose)"
	cd tests/compose && go vet .

# The PyPA advisory database (OSV records) that `make lint` audits the pins against, offline;
# run again to refresh it. ADVISORY_DB_URL may name a local mirror.
ADVISORY_DB_URL ?= https://github.com/pypa/advisory-database
advisory-db: ## clone or refresh the advisory database make lint's dependency audit reads (.cache/advisory-database)
	if [ -d .cache/advisory-database/.git ]; then git -C .cache/advisory-database pull --quiet --ff-only; \
	else git clone --quiet --depth 1 $(ADVISORY_DB_URL) .cache/advisory-database; fi
	$(PY) -m services.devstack.audit

audit-online: setup ## the same pins through pip-audit and PyPI's advisory service (needs the internet; not part of make lint)
	mkdir -p reports && $(PY) -m services.devstack.audit --requirements > reports/requirements-pinned.txt
	pipx run pip-audit==2.10.1 --strict --no-deps --disable-pip -r reports/requirements-pinned.txt

compose-check: ## validate docker-compose.yml against the Compose spec with compose-go (no Docker needed)
	cd tests/compose && go run . ../../docker-compose.yml

promcheck: ## promtool: both Prometheus configs, the rules, the alert unit tests
	promtool check config infra/prometheus/prometheus.yml
	promtool check config infra/prometheus/prometheus.local.yml
	promtool check rules infra/prometheus/rules/*.yml
	promtool test rules infra/prometheus/tests/*_test.yml

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

bench-stream-turns: setup ## the stream scorer's drain, this checkout against REF=<commit>, in turns (ROUNDS=2): new / old per round (reports/bench/stream_turns/)
	@test -n "$(REF)" || { echo "give the commit to compare with: make bench-stream-turns REF=<commit>" >&2; exit 2; }
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/fraud_stream_turns.py --ref $(REF) --rounds $(or $(ROUNDS),2)

bench-stream-cores: setup ## the stream scorer's drain and the floor's on one core and on two (taskset), in turns (ROUNDS=2): how the rate grows with cores (reports/bench/stream_cores/)
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/fraud_stream_cores.py --rounds $(or $(ROUNDS),2)

bench-stream-io: setup ## the stream scorer's per-event cost outside scoring, before/after BEFORE=<ref> (benchmarks/results/)
	$(PY) benchmarks/stream_io.py $(if $(BEFORE),--before $(BEFORE))

bench-fraud-replay: setup ## decisions on a replayed week, this checkout against REF (default 7e4b163, the oldest layout it runs on): every difference counted (benchmarks/results/)
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/fraud_replay_compare.py --ref $(or $(REF),7e4b163)

bench-cluster: setup ## what one Kafka broker and one Redis Cluster master carry, on the cluster topology (free ports) (benchmarks/results/)
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/cluster_capacity.py

bench-recs-memory: run ## Redis bytes per user and per title of the seeded state; what 200 M users need (benchmarks/results/)
	$(PY) benchmarks/recs_memory.py

bench-fraud-shadow: setup ## the stream scorer's drain tx/s without and with a shadow challenger, alternated in one run (benchmarks/results/)
	$(PY) -m services.trainer --if-missing
	$(PY) benchmarks/fraud_stream_shadow.py

shadow-run: setup ## the fraud lifecycle on running services on their own free ports (~7.5 min, 452 s measured with other jobs running, 2 of them watching the resolved alert): prices x1.5 fire ModelInputDrift in a real Prometheus, a gated retrain from the lake shadows production on labelled traffic (docs/evaluation/fraud-shadow-stack.*), its promotion resolves the firing alert, watched staying inactive (benchmarks/results/fraud_drift_stack.json)
	$(PY) benchmarks/fraud_lifecycle_stack.py

bench-fraud-retrain-dev: setup ## make models, make seed (38 days, then the 66 the dev world has) and make retrain-fraud on a stack of their own on free ports, timed (~12 min; benchmarks/results/)
	$(PY) benchmarks/fraud_retrain_dev_stack.py

drift-fraud-stack: shadow-run ## the drift loop through the running services and Prometheus: the same run as make shadow-run

drift-fraud: setup ## the drift loop: prices x1.5 fire the PSI alerts (promtool, the shipped rules), a gated retrain from the lake clears them (benchmarks/results/)
	$(PY) benchmarks/fraud_drift_loop.py

drift-recs: setup ## the recommender's drift scenario: a shift in taste against the ranker's PSI gauges and the alerts (promtool, the shipped rules) (benchmarks/results/)
	$(PY) benchmarks/recs_drift_scenario.py

bench-lake: setup ## lake sink throughput and lag: N events to the broker, time until all are in Parquet (benchmarks/results/)
	$(PY) benchmarks/lake_sink.py

bench-kafka: setup ## Kafka clients side by side: msg/s and CPU per message (benchmarks/results/)
	$(PY) benchmarks/kafka_clients.py

# The peers live in their own virtualenvs (Feast and MLServer pin conflicting packages), never in
# .venv; each is rebuilt when its pinned requirements change. Wheels are cached under .cache/pip.
PEERS_VENV := .cache/peers-venv

$(PEERS_VENV)/%/.installed: benchmarks/peers/requirements-%.txt
	rm -rf $(PEERS_VENV)/$*
	$(PYTHON) -m venv $(PEERS_VENV)/$*
	$(PEERS_VENV)/$*/bin/pip install --quiet --cache-dir .cache/pip --upgrade pip==25.3
	$(PEERS_VENV)/$*/bin/pip install --quiet --cache-dir .cache/pip -r $<
	touch $@

bench-peers: setup $(PEERS_VENV)/feast/.installed $(PEERS_VENV)/mlserver/.installed ## Feast, MLServer, GrowthBook side by side with ours and the floors (benchmarks/results/peers.json, reports/peers/)
	$(PY) benchmarks/peers/run.py $(if $(QUICK),--quick)

docs-numbers: setup ## rewrite the docs' generated figure tables from the committed results (benchmarks/doc_numbers.py; make test checks them)
	$(PY) benchmarks/doc_numbers.py

# make demo's short load test: rates this 2-core machine holds inside the budgets (docs/)
DEMO_FRAUD_RPS ?= 100
DEMO_RECS_RPS ?= 150
DEMO_LOAD_DURATION ?= 15s
LOAD_DIR ?= reports/load
LOAD_ARRIVAL ?= poisson
LOAD_FRAUD_HOST ?= http://127.0.0.1:8040
LOAD_FRAUD_USERS ?= 50
LOAD_FRAUD_RPS ?= 500
LOAD_FRAUD_DURATION ?= 30s
LOAD_RECS_HOST ?= http://127.0.0.1:8030
LOAD_RECS_USERS ?= 30
LOAD_RECS_RPS ?= 300
LOAD_RECS_DURATION ?= 30s
LOAD_RECS_WORLD ?= .state/worlds/$(if $(MOVIELENS),movielens,viewing)
# who asks for recommendations: population (every user Zipf-ranked, a tenth unknown) or skewed
LOAD_RECS_MIX ?= population

# $(call locust,design,host,users,duration,rps): headless and gated, into $(LOAD_DIR)/design/locust*
locust = $(VENV)/bin/locust -f load-tests/$(1).py --headless --only-summary --host $(2) \
	--users $(3) --spawn-rate $(3) --run-time $(4) --target-rps $(5) \
	--csv $(LOAD_DIR)/$(1)/locust --csv-full-history --html $(LOAD_DIR)/$(1)/locust.html
# $(call openloop,design,host,duration,rps): the same traffic on a fixed schedule, gated alike
openloop = $(PY) load-tests/openloop.py $(1) --host $(2) --duration $(3) --rps $(4) \
	--arrival $(LOAD_ARRIVAL) --out $(LOAD_DIR)/$(1)/openloop
LOCUST_FRAUD = $(call locust,fraud,$(LOAD_FRAUD_HOST),$(LOAD_FRAUD_USERS),$(LOAD_FRAUD_DURATION),$(LOAD_FRAUD_RPS))
LOCUST_RECS = $(call locust,recs,$(LOAD_RECS_HOST),$(LOAD_RECS_USERS),$(LOAD_RECS_DURATION),$(LOAD_RECS_RPS)) \
	--world-dir $(LOAD_RECS_WORLD) --mix $(LOAD_RECS_MIX)
OPENLOOP_FRAUD = $(call openloop,fraud,$(LOAD_FRAUD_HOST),$(LOAD_FRAUD_DURATION),$(LOAD_FRAUD_RPS))
OPENLOOP_RECS = $(call openloop,recs,$(LOAD_RECS_HOST),$(LOAD_RECS_DURATION),$(LOAD_RECS_RPS)) \
	--world-dir $(LOAD_RECS_WORLD) --mix $(LOAD_RECS_MIX)

load-fraud: run ## load test the fraud service (500 req/s, 30 s); fails if p99 > 50 ms or > 0.1% fail
	mkdir -p $(LOAD_DIR)/fraud
	$(LOCUST_FRAUD)

load-recs: run ## load test the recommender (300 req/s, 30 s); fails if p99 > 100 ms or > 0.1% fail
	mkdir -p $(LOAD_DIR)/recs
	$(LOCUST_RECS)

load: run ## both designs (recs first: an overloaded fraud run leaves a backlog), closed then open loop, report; fails if a gate broke
	rm -rf $(LOAD_DIR)/fraud $(LOAD_DIR)/recs
	mkdir -p $(LOAD_DIR)/fraud $(LOAD_DIR)/recs
	@broken=""; \
	echo "== recs, closed loop (Locust)"; $(LOCUST_RECS) || broken="$$broken recs/locust"; \
	echo "== recs, open loop"; $(OPENLOOP_RECS) || broken="$$broken recs/openloop"; \
	echo "== fraud, closed loop (Locust)"; $(LOCUST_FRAUD) || broken="$$broken fraud/locust"; \
	echo "== fraud, open loop"; $(OPENLOOP_FRAUD) || broken="$$broken fraud/openloop"; \
	echo "== report"; $(PY) load-tests/report.py $(LOAD_DIR)/fraud $(LOAD_DIR)/recs \
		|| broken="$$broken report"; \
	if [ -n "$$broken" ]; then echo "make load: FAILED:$$broken (report: $(LOAD_DIR)/*/summary.md)"; exit 1; fi; \
	echo "make load: every gate passed (report: $(LOAD_DIR)/*/summary.md)"

# Real-time personalization under load: the uncached open loop at LOAD_FRESHNESS_RPS and, beside
# it, probes that watch a title through ingest and time until that user's list drops it.
LOAD_FRESHNESS_RPS ?= 600
LOAD_FRESHNESS_PROBES ?= 100
LOAD_FRESHNESS_DURATION ?= 60s

load-freshness: run ## a watch changes that user's next list within 1 s (p99 of 100 probes) while uncached recs run at 600 req/s
	mkdir -p $(LOAD_DIR)/freshness
	@$(PY) load-tests/openloop.py recs-uncached --host $(LOAD_RECS_HOST) --rps $(LOAD_FRESHNESS_RPS) \
		--duration $(LOAD_FRESHNESS_DURATION) --arrival $(LOAD_ARRIVAL) --world-dir $(LOAD_RECS_WORLD) \
		--out $(LOAD_DIR)/freshness/openloop & load=$$!; \
	$(PY) load-tests/freshness.py --recs $(LOAD_RECS_HOST) --probes $(LOAD_FRESHNESS_PROBES) \
		--interval 0.5 --delay-s 5 --world-dir $(LOAD_RECS_WORLD) --out $(LOAD_DIR)/freshness/freshness; \
	probes=$$?; wait $$load; loaded=$$?; \
	if [ $$probes -ne 0 ] || [ $$loaded -ne 0 ]; then echo "make load-freshness: FAILED"; exit 1; fi

load-report: ## (re)write the report of the last load runs: plots and summary.md per design
	$(PY) load-tests/report.py $(wildcard $(LOAD_DIR)/fraud $(LOAD_DIR)/recs)

# The load sweep: offered rates past the framework's floor (issue 14: ~2,500 req/s, quiet machine), finer
# where the services' knees are (a few hundred req/s); load-tests/README.md says how it stops.
LOAD_SWEEP_DESIGNS ?= recs recs-uncached fraud
LOAD_SWEEP_RATES ?= 100,200,300,400,500,600,800,1000,1250,1500,2000,2500,3000
LOAD_SWEEP_STEP_DURATION ?= 10s
LOAD_SWEEP_DIR ?= $(LOAD_DIR)/sweep
LOAD_SWEEP_ARGS ?=
SWEEP = $(PY) load-tests/sweep.py $(LOAD_SWEEP_DESIGNS) --rates $(LOAD_SWEEP_RATES) \
	--step-duration $(LOAD_SWEEP_STEP_DURATION) --arrival $(LOAD_ARRIVAL) \
	--host fraud=$(LOAD_FRAUD_HOST) --host recs=$(LOAD_RECS_HOST) \
	--host recs-uncached=$(LOAD_RECS_HOST) --out $(LOAD_SWEEP_DIR) \
	$(LOAD_SWEEP_ARGS)

load-sweep: run ## p99 against offered rate per design, open loop, beside the bare-endpoint floor; knees in reports/load/sweep/
	$(SWEEP)

load-sweep-floor: setup ## the load sweep against the bare-endpoint floor alone (no stack): what FastAPI on one process allows
	$(PY) -m services.trainer --if-missing
	$(SWEEP) --floor-only

up: ## the same topology with Docker Compose (needs a Docker engine)
	docker compose up -d --wait

down: ## stop the Compose stack (every profile, Locust included)
	docker compose --profile '*' down

clean: stop ## remove local state (data dirs, logs); keeps the virtualenv and the Kafka jars
	rm -rf .state reports
