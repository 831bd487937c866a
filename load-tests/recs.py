"""Load test of the recommendation service: GET /v1/recommendations/{user_id}, gated.

Headless, gated (exit 1 on a broken SLO):  make load-recs
Web UI (http://localhost:8089):            .venv/bin/locust -f load-tests/recs.py \\
                                               --host http://127.0.0.1:8030
Askers come from the viewing world (viewers.py, --mix: the whole population Zipf-ranked with a
tenth unknown by default, or the old skewed mix) and users no world has (cold start). Every
answer is checked against the contract and counted by served_from; a malformed one fails the
run. --uncached asks for every list computed now (`Cache-Control: no-cache, no-store`), and an
answer served any other way fails.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import paced  # siblings: Locust puts the locustfile's folder on sys.path while importing it
import slo
import viewers
from locust import events, task
from locust.env import Environment

logger = logging.getLogger("recs")

GATE = slo.Slo({viewers.ENDPOINT: viewers.P99_BUDGET_MS})
TALLY_KEY = "recs_tally"  # what a worker adds to its reports to the master

# This process's answers by served_from: a worker's counts go to the master with its stats.
tally = viewers.Tally()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    paced.add_rate_option(parser, viewers.DEFAULT_TARGET_RPS)
    parser.add_argument("--world-dir", default=str(viewers.DEFAULT_WORLD),
                        env_var="LOCUST_WORLD_DIR", include_in_web_ui=False,
                        help="the synthetic viewing world (users.parquet)")
    parser.add_argument("--mix", choices=sorted(viewers.MIXES), default=viewers.DEFAULT_MIX,
                        env_var="LOCUST_RECS_MIX", help="who asks (viewers.py)")
    parser.add_argument("--uncached", action="store_true", env_var="LOCUST_RECS_UNCACHED",
                        help="every list computed now: Cache-Control: no-cache, no-store")


@functools.cache
def _population(directory: str, mix: str) -> viewers.Population:
    return viewers.Population(viewers.load_users(Path(directory)), viewers.MIXES[mix])


@events.init.add_listener
def _load_population(environment: Environment, **_: Any) -> None:
    paced.preload(environment, lambda options: _population(options.world_dir, options.mix))


@events.test_start.add_listener
def _reset_tally(**_: Any) -> None:
    tally.clear()  # the web UI can start a new test in the same process


@events.report_to_master.add_listener
def _send_tally(data: dict[str, Any], **_: Any) -> None:
    data[TALLY_KEY] = tally.as_dict()
    tally.clear()


@events.worker_report.add_listener
def _add_tally(data: dict[str, Any], **_: Any) -> None:
    tally.merge(data.get(TALLY_KEY, {}))


slo.install(events, GATE, problems=lambda: {viewers.ENDPOINT: tally.problems()})


@events.quitting.add_listener
def _log_tally(environment: Environment, **_: Any) -> None:
    """The served_from line, before the gate's verdict (Locust calls the quitting listeners
    last-added first), and with --csv PREFIX the counts in PREFIX_served_from.csv."""
    options = environment.parsed_options
    if options is not None and getattr(options, "worker", False):
        return
    logger.info(tally.line())
    if prefix := getattr(options, "csv_prefix", None):
        tally.write_csv(Path(f"{prefix}_served_from.csv"))


class Viewer(paced.PacedUser):
    """One app session asking for rows of recommendations, paced to its share of the rate."""

    default_target_rps = viewers.DEFAULT_TARGET_RPS

    def on_start(self) -> None:
        options = self.environment.parsed_options
        world_dir = options.world_dir if options is not None else str(viewers.DEFAULT_WORLD)
        mix = options.mix if options is not None else viewers.DEFAULT_MIX
        self.uncached = bool(options is not None and options.uncached)
        super().on_start()
        self.traffic = viewers.TrafficGenerator(_population(world_dir, mix), self.rng)

    @task
    def recommend(self) -> None:
        request = next(self.traffic)
        with self.client.get(request.path, name=viewers.ENDPOINT, catch_response=True,
                             headers=viewers.UNCACHED if self.uncached else None) as response:
            if response.status_code != 200:
                if 200 < response.status_code < 300:  # other errors Locust counts already
                    response.failure(f"HTTP {response.status_code}, not 200")
                return
            try:
                body = response.json()
            except ValueError:
                body = None
            if problem := tally.record(body, request):
                response.failure(f"malformed answer: {problem}")
            elif self.uncached and (problem := viewers.uncached_problem(body)):
                response.failure(problem)
