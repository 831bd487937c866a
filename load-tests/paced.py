"""What the locustfiles share: users that each send their share of --target-rps, out of step.

A locustfile subclasses PacedUser (its own tasks, its own default rate), adds --target-rps with
`add_rate_option`, and loads its world before users spawn with `preload`. Locust only: the pure
modules (slo, transactions, viewers, openloop) never import this one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gevent
from locust import FastHttpUser, constant_throughput
from locust.env import Environment


def add_rate_option(parser: Any, default_rps: float) -> None:
    parser.add_argument("--target-rps", type=float, default=default_rps,
                        env_var="LOCUST_TARGET_RPS",
                        help="requests/s of all users together; 0 = as fast as they can")


def preload(environment: Environment, load: Callable[[Any], object]) -> None:
    """Run load(parsed_options) before any user starts, not while the first one spawns (not on
    a master: it sends no requests)."""
    options = environment.parsed_options
    if options is not None and not getattr(options, "master", False):
        load(options)
        # That blocked the event loop, whose clock is cached: --run-time's timer, set next,
        # would count from the stale time and end the run early by the time it took.
        gevent.get_hub().loop.update_now()


class PacedUser(FastHttpUser):
    """One client connection sending its share of --target-rps (constant_throughput), so
    users x share = the rate, each starting at a random point of its first interval."""

    abstract = True
    default_target_rps = 100.0
    # An answer later than this is a failure whatever the budget says.
    network_timeout = 5.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.rng = random.Random()
        # Users spawned together would send their first requests together: a burst of `users`
        # requests that measures queueing, not the service. Each starts somewhere in its first
        # interval instead.
        if (rate := self.rate()) > 0:
            gevent.sleep(self.rng.uniform(0.0, 1.0 / rate))

    def rate(self) -> float:
        """This user's share of --target-rps, in requests per second (0: unpaced)."""
        options = self.environment.parsed_options
        rps = float(options.target_rps) if options is not None else self.default_target_rps
        runner = self.environment.runner
        users = max(1, runner.target_user_count if runner is not None else 1)
        return max(0.0, rps) / users

    def wait_time(self) -> float:
        rate = self.rate()
        if rate == 0:
            return 0.0
        # The same for every later request: the jitter keeps users from falling into step;
        # constant_throughput makes up for it on the next wait, so the rate holds.
        return constant_throughput(rate)(self) * self.rng.uniform(0.0, 2.0)
