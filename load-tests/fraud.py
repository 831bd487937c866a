"""Load test of the fraud service: POST /v1/score with the synthetic world's traffic, gated.

Headless, gated (exit 1 on a broken SLO):  make load-fraud
Web UI (http://localhost:8089):            .venv/bin/locust -f load-tests/fraud.py \\
                                               --host http://127.0.0.1:8040
Each user sends its share of --target-rps (constant_throughput), so users x share = the rate.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

import gevent
import slo  # siblings: Locust puts the locustfile's folder on sys.path while importing it
import transactions
from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment

ENDPOINT = "POST /v1/score"
GATE = slo.Slo({ENDPOINT: 50.0})  # the fraud design's decision budget (docs/architecture.md)
DEFAULT_TARGET_RPS = 500.0
DEFAULT_WORLD = Path(".state/worlds/transactions")  # where `make models` writes it

slo.install(events, GATE)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    parser.add_argument("--target-rps", type=float, default=DEFAULT_TARGET_RPS,
                        env_var="LOCUST_TARGET_RPS",
                        help="requests/s of all users together; 0 = as fast as they can")
    parser.add_argument("--world-dir", default=str(DEFAULT_WORLD), env_var="LOCUST_WORLD_DIR",
                        include_in_web_ui=False,
                        help="the synthetic transactions world (customers.parquet, terminals...)")


@functools.cache
def _world(directory: str) -> transactions.World:
    return transactions.load_world(Path(directory))


@events.init.add_listener
def _load_world(environment: Environment, **_: Any) -> None:
    """Index the world (about 2 s) before any user starts, not while the first one spawns."""
    options = environment.parsed_options
    if options is not None and not getattr(options, "master", False):
        _world(options.world_dir)
        # That blocked the event loop, whose clock is cached: --run-time's timer, set next,
        # would count from the stale time and end the run early by the time it took.
        gevent.get_hub().loop.update_now()


class FraudClient(FastHttpUser):
    """One payment gateway connection asking for decisions, paced to its share of the rate."""

    # A decision later than this is a failure whatever the budget says.
    network_timeout = 5.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        world_dir = options.world_dir if options is not None else str(DEFAULT_WORLD)
        self.rng = random.Random()
        self.traffic = transactions.TrafficGenerator(_world(world_dir), self.rng)
        # Users spawned together would send their first requests together: a burst of `users`
        # requests that measures queueing, not the service. Each starts somewhere in its first
        # interval instead.
        if (rate := self._rate()) > 0:
            gevent.sleep(self.rng.uniform(0.0, 1.0 / rate))

    def _rate(self) -> float:
        """This user's share of --target-rps, in requests per second (0: unpaced)."""
        options = self.environment.parsed_options
        rps = float(options.target_rps) if options is not None else DEFAULT_TARGET_RPS
        runner = self.environment.runner
        users = max(1, runner.target_user_count if runner is not None else 1)
        return max(0.0, rps) / users

    def wait_time(self) -> float:
        rate = self._rate()
        if rate == 0:
            return 0.0
        # The same for every later request: the jitter keeps users from falling into step;
        # constant_throughput makes up for it on the next wait, so the rate holds.
        return constant_throughput(rate)(self) * self.rng.uniform(0.0, 2.0)

    @task
    def score(self) -> None:
        self.client.post("/v1/score", json=next(self.traffic).body, name=ENDPOINT)
