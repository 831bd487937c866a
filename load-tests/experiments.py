"""Load test of the experiments service's HTTP assignment: GET /v1/assignments, gated.

    .venv/bin/locust -f load-tests/experiments.py --headless --host http://127.0.0.1:8020 \\
        --users 20 --spawn-rate 20 --run-time 20s --target-rps 300

The recommender assigns in process (microseconds); this is the path for clients that cannot
embed the library (web front ends, other languages). Units are u0..u199999, so most are new to
the service and each first assignment also logs an exposure (one Redis SET NX). Gate: p99 within
10 ms (the brief gives A/B assignment 1 ms in process; 10 ms allows one HTTP hop), <= 0.1 % fail.
"""

from __future__ import annotations

from typing import Any

import paced  # siblings: Locust puts the locustfile's folder on sys.path while importing it
import slo
from locust import events, task

ENDPOINT = "GET /v1/assignments"
GATE = slo.Slo({ENDPOINT: 10.0})
EXPERIMENT = "rec-algorithm"


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    paced.add_rate_option(parser, 300.0)


slo.install(events, GATE)


class Assigner(paced.PacedUser):
    default_target_rps = 300.0

    @task
    def assign(self) -> None:
        unit = f"u{self.rng.randrange(200_000)}"
        with self.client.get(f"/v1/assignments?unit_id={unit}&experiment={EXPERIMENT}",
                             name=ENDPOINT, catch_response=True) as response:
            if response.status_code == 200 and response.json().get("experiment") != EXPERIMENT:
                response.failure("the answer names another experiment")
