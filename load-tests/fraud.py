"""Load test of the fraud service: POST /v1/score with the synthetic world's traffic, gated.

Headless, gated (exit 1 on a broken SLO):  make load-fraud
Web UI (http://localhost:8089):            .venv/bin/locust -f load-tests/fraud.py \\
                                               --host http://127.0.0.1:8040
Each user sends its share of --target-rps (constant_throughput), so users x share = the rate.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import paced  # siblings: Locust puts the locustfile's folder on sys.path while importing it
import slo
import transactions
from locust import events, task
from locust.env import Environment

GATE = slo.Slo({transactions.ENDPOINT: transactions.P99_BUDGET_MS})

slo.install(events, GATE)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    paced.add_rate_option(parser, transactions.DEFAULT_TARGET_RPS)
    parser.add_argument("--world-dir", default=str(transactions.DEFAULT_WORLD),
                        env_var="LOCUST_WORLD_DIR", include_in_web_ui=False,
                        help="the synthetic transactions world (customers.parquet, terminals...)")


@functools.cache
def _world(directory: str) -> transactions.World:
    return transactions.load_world(Path(directory))


@events.init.add_listener
def _load_world(environment: Environment, **_: Any) -> None:
    """Index the world (about 2 s) before any user starts."""
    paced.preload(environment, lambda options: _world(options.world_dir))


class FraudClient(paced.PacedUser):
    """One payment gateway connection asking for decisions, paced to its share of the rate."""

    default_target_rps = transactions.DEFAULT_TARGET_RPS

    def on_start(self) -> None:
        options = self.environment.parsed_options
        world_dir = options.world_dir if options is not None else str(transactions.DEFAULT_WORLD)
        super().on_start()
        self.traffic = transactions.TrafficGenerator(_world(world_dir), self.rng)

    @task
    def score(self) -> None:
        self.client.post("/v1/score", json=next(self.traffic).body, name=transactions.ENDPOINT)
