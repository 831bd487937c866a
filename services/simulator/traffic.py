"""Simulated viewers against the running stack: ask for a list, click by true taste, post clicks.

Shared by `python -m services.simulator` (one A/B test) and services/simulator/loop.py (make
ab-demo: baseline traffic, retrain, challenger test, promote).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

from services.common.bus import topics
from services.common.bus.kafka_bus import group_lags
from services.common.kafka_access import KafkaTarget
from services.simulator.clicks import Reaction, Shown, click_events, react
from services.trainer.worlds.viewing import ViewingWorld

STREAM_GROUP = "stream-experiments"   # the stream processor's group joining exposures and clicks
AB_TOPICS = [topics.EXPOSURES, topics.REC_IMPRESSIONS, topics.REC_CLICKS]


@dataclass(frozen=True)
class Stack:
    """Where the running services answer."""

    recommender: str = "http://127.0.0.1:8030"
    ingest: str = "http://127.0.0.1:8000"
    experiments: str = "http://127.0.0.1:8020"
    kafka: KafkaTarget = "127.0.0.1:9092"  # the brokers, with credentials when they ask them


def ask(client: httpx.Client, recommender: str, user: str, k: int) -> Shown:
    response = client.get(f"{recommender}/v1/recommendations/{user}", params={"k": k})
    response.raise_for_status()
    body = response.json()
    return Shown(user, body["request_id"], body["variant"],
                 tuple(item["content_id"] for item in body["items"]))


def run_viewer(client: httpx.Client, stack: Stack, world: ViewingWorld, user: str,
               rng: np.random.Generator, k: int) -> Reaction:
    shown = ask(client, stack.recommender, user, k)
    reaction = react(world, shown, rng)
    events = click_events(reaction)
    if events:
        client.post(f"{stack.ingest}/v1/events", json={"events": events}).raise_for_status()
    return reaction


def run_viewers(client: httpx.Client, stack: Stack, world: ViewingWorld, users: list[str],
                rows: list[int], seed: int, k: int, concurrency: int,
                desc: str = "simulated viewers") -> list[Reaction]:
    """Every user once, `concurrency` at a time; user row r draws from rng([seed, r])."""
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(run_viewer, client, stack, world, user,
                               np.random.default_rng([seed, row]), k)
                   for user, row in zip(users, rows, strict=True)]
        return [f.result() for f in tqdm(futures, desc=desc, unit="user")]


def experiment_lag(kafka: KafkaTarget, group: str, topics_: list[str]) -> int:
    return sum(group_lags(kafka, {group: topics_}).values())


def wait_for_counts(client: httpx.Client, url: str, clicks: int, kafka: KafkaTarget,
                    timeout_s: float) -> dict[str, Any]:
    """Poll the results until the stream has counted every click posted (each is a new event)
    and its experiments group has nothing left to apply (exposures of returning viewers are
    not new, so they cannot be counted on), or time out."""
    deadline = time.monotonic() + timeout_s
    with tqdm(total=clicks, desc="stream applying exposures and clicks") as bar:
        while True:
            results: dict[str, Any] = client.get(url).raise_for_status().json()
            seen = sum(v["clicks"] for v in results["variations"])
            bar.n = min(seen, clicks)
            bar.refresh()
            done = seen >= clicks and experiment_lag(kafka, STREAM_GROUP, AB_TOPICS) == 0
            if done or time.monotonic() > deadline:
                return results
            time.sleep(1.0)
