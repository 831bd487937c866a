"""Experiment definitions and exposure marks on real Redis: layout, refresh, outage, dedupe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from services.common.bus.ports import OutboundMessage
from services.designs.experiments.assignment import assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.counts import (
    Click,
    Exposure,
    Impression,
    RedisExperimentCounters,
    experiment_counts,
    experiment_counts_until,
)
from services.designs.experiments.definitions import ExperimentDefinition, parse_definition
from services.designs.experiments.exposures import ExposureLog
from services.designs.experiments.store import RedisDefinitionStore
from tests.harness import ServerProcess, start_redis

pytestmark = pytest.mark.integration


def definition(key: str = "rec-algorithm", **changes: Any) -> ExperimentDefinition:
    return parse_definition({"key": key, "status": "running", "variations": [
        {"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
        {"name": "treatment", "weight": 0.5, "payload": {"algorithm": "ranker"}}], **changes})


def test_definitions_live_in_one_hash_beside_a_version(redis_client: redis.Redis) -> None:
    store = RedisDefinitionStore(redis_client)

    store.put(definition())
    store.put(definition("other", status="draft"))

    assert sorted(redis_client.keys("fs:exp_definitions*")) == [
        b"fs:exp_definitions:{experiments}", b"fs:exp_definitions_version:{experiments}"]
    assert sorted(redis_client.hkeys("fs:exp_definitions:{experiments}")) == [
        b"other", b"rec-algorithm"]
    assert store.version() == 2
    assert store.get("rec-algorithm") == definition()
    assert [d.key for d in store.snapshot().definitions] == ["other", "rec-algorithm"]


def test_seeding_adds_only_absent_keys_and_moves_the_version_only_then(
        redis_client: redis.Redis) -> None:
    store = RedisDefinitionStore(redis_client)
    store.put(definition(coverage=0.3))

    assert store.add_missing([definition(), definition("new-one")]) == ["new-one"]
    assert store.add_missing([definition(), definition("new-one")]) == []

    stored = store.get("rec-algorithm")
    assert stored is not None and stored.coverage == 0.3
    assert store.version() == 2


def test_the_store_and_the_exposure_marks_run_on_redis_cluster(
        request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue("redis_cluster_server")
    cluster = RedisCluster.from_url(server.address)
    try:
        cluster.flushall()
        store = RedisDefinitionStore(cluster)
        store.put(definition())
        added = store.add_missing([definition(), definition("other")])
        snapshot = store.snapshot()
        outcomes = ExposureLog(cluster, Queue()).record_all(
            [assign(d, "u42") for d in snapshot.definitions], "u42")
    finally:
        cluster.close()
    assert added == ["other"]
    assert (snapshot.version, [d.key for d in snapshot.definitions]) == (
        2, ["other", "rec-algorithm"])
    assert outcomes == ["logged", "logged"]


def test_a_cache_sees_another_process_write_within_its_interval(
        redis_client: redis.Redis) -> None:
    writer = RedisDefinitionStore(redis.Redis(connection_pool=redis_client.connection_pool))
    writer.put(definition())
    cache = DefinitionCache(RedisDefinitionStore(redis_client), interval_s=0.05)
    cache.start()
    try:
        writer.put(definition(coverage=0.25))
        deadline = time.monotonic() + 5
        while (current := cache.get("rec-algorithm")) is None or current.coverage != 0.25:
            assert time.monotonic() < deadline, "the change never reached the cache"
            time.sleep(0.01)
    finally:
        cache.close()


def test_a_definition_written_around_the_api_that_does_not_validate_is_left_out(
        redis_client: redis.Redis) -> None:
    store = RedisDefinitionStore(redis_client)
    store.put(definition())
    store.put(definition("other"))
    cache = DefinitionCache(store)
    cache.refresh()

    redis_client.hset("fs:exp_definitions:{experiments}", "rec-algorithm", '{"key": "broken"')
    redis_client.hset("fs:exp_definitions:{experiments}", "third", '{"key": "third"}')
    redis_client.incr("fs:exp_definitions_version:{experiments}")

    assert cache.refresh() == "loaded"
    assert cache.get("rec-algorithm") == definition()  # its last good version stays
    assert cache.get("third") is None
    assert store.snapshot().invalid == ("rec-algorithm", "third")


def test_when_redis_goes_away_the_cache_keeps_serving_the_last_good_set(
        tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    client = redis.Redis.from_url(server.address, socket_timeout=0.2,
                                  socket_connect_timeout=0.2)
    try:
        RedisDefinitionStore(client).put(definition())
        cache = DefinitionCache(RedisDefinitionStore(client))
        assert cache.refresh() == "loaded"

        server.stop()

        assert cache.refresh() == "failed"
        assert cache.get("rec-algorithm") == definition()
        assert [d.key for d in cache.running()] == ["rec-algorithm"]
    finally:
        client.close()
        server.stop()


class Queue:
    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def submit(self, message: OutboundMessage) -> bool:
        self.messages.append(message)
        return True


def test_two_processes_log_a_units_exposure_once_and_the_mark_expires_in_30_days(
        redis_client: redis.Redis) -> None:
    first, second = Queue(), Queue()
    logs = [ExposureLog(redis_client, first), ExposureLog(redis_client, second)]
    assignments = {key: assign(definition(key), "u42") for key in ("rec-algorithm", "other")}

    outcomes = [log.record_all(list(assignments.values()), "u42") for log in logs]

    assert outcomes == [["logged", "logged"], ["duplicate", "duplicate"]]
    assert (len(first.messages), len(second.messages)) == (2, 0)
    ttl_ms = redis_client.pttl("fs:exp_exposure_logged:{u42}:rec-algorithm")
    assert 29 * 86_400_000 < ttl_ms <= 30 * 86_400_000


def test_counts_as_of_an_instant_leave_out_later_exposures_and_conversions(
        redis_client: redis.Redis) -> None:
    counters = RedisExperimentCounters(redis_client)
    counters.apply(exposures=[Exposure("rep-x", "control", "u1", 1_000),
                              Exposure("rep-x", "control", "u2", 1_000),
                              Exposure("rep-x", "treatment", "u3", 5_000)],
                   impressions=[Impression("q1", "rep-x", "control")])
    counters.apply(clicks=[Click("c1", "u1", "q1", 2_000), Click("c2", "u2", None, 9_000)])

    whole = experiment_counts(redis_client, "rep-x")
    at_3s = experiment_counts_until(redis_client, "rep-x", 3_000)

    assert (whole["control"].exposed, whole["control"].converted) == (2, 2)
    assert (at_3s["control"].exposed, at_3s["control"].converted) == (2, 1)   # u2 clicked later
    assert at_3s["treatment"].exposed == 0                                     # exposed later
    assert at_3s["control"].impressions == whole["control"].impressions == 1
