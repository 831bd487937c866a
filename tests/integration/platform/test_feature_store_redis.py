"""What only the Redis store promises: the documented key layout, one round trip, clear failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureStoreUnavailable,
    FeatureType,
    FeatureView,
    FeatureWrite,
    RedisFeatureStore,
)
from services.common.features.redis_store import GUARDED_WRITE
from tests.harness import ServerProcess, free_port

pytestmark = pytest.mark.integration

CARD = Entity("card")
PROFILE = FeatureView("card_profile", CARD, (
    Feature("avg_amount", FeatureType.FLOAT64),
    Feature("tx_count", FeatureType.INT64),
    Feature("is_premium", FeatureType.BOOL),
    Feature("embedding", FeatureType.FLOAT_VECTOR, dim=2),
), ttl=timedelta(hours=1))
VELOCITY = FeatureView("card_velocity", CARD, (Feature("tx_1h", FeatureType.INT64),),
                       ttl=timedelta(minutes=5))
CATALOG = FeatureCatalog([PROFILE, VELOCITY])
EVENT_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVENT_MS = 1_740_830_400_000


def profile_write(entity_id: str) -> FeatureWrite:
    return FeatureWrite("card_profile", entity_id, {
        "avg_amount": 12.5, "tx_count": 3, "is_premium": True, "embedding": [1.0, -0.5]},
        EVENT_TIME)




def test_rows_are_stored_under_the_documented_key_layout(redis_client: redis.Redis) -> None:
    RedisFeatureStore(redis_client, CATALOG).write_batch([profile_write("card42")])

    assert redis_client.keys("*") == [b"fs:card_profile:{card42}"]
    assert redis_client.hgetall("fs:card_profile:{card42}") == {
        b"_ts": str(EVENT_MS).encode(),
        b"avg_amount": b"12.5",
        b"tx_count": b"3",
        b"is_premium": b"1",
        b"embedding": np.array([1.0, -0.5], dtype="<f4").tobytes(),
    }
    assert 0 < redis_client.pttl("fs:card_profile:{card42}") <= 3_600_000


def test_namespace_from_settings_prefixes_every_key(redis_client: redis.Redis) -> None:
    RedisFeatureStore(redis_client, CATALOG, namespace="staging").write_batch(
        [profile_write("card42")])

    assert redis_client.keys("*") == [b"staging:card_profile:{card42}"]


def test_a_batch_of_writes_and_a_read_of_many_rows_are_one_round_trip_each(
        redis_client: redis.Redis, round_trips: list[int]) -> None:
    store = RedisFeatureStore(redis_client, CATALOG)
    redis_client.script_load(GUARDED_WRITE)  # a first write loads it: one extra trip, once
    round_trips.clear()

    store.write_batch([profile_write(f"c{i}") for i in range(50)])
    writes = len(round_trips)
    store.read([{"card": f"c{i}"} for i in range(50)], PROFILE.refs + VELOCITY.refs)

    assert (writes, len(round_trips)) == (1, 2)


def test_writes_recover_when_redis_has_forgotten_the_script(redis_client: redis.Redis) -> None:
    store = RedisFeatureStore(redis_client, CATALOG)
    store.write_batch([profile_write("c1")])
    redis_client.script_flush()  # what a restart without persistence of the script cache does

    report = store.write_batch([profile_write("c2")])

    assert report.applied == 1
    assert redis_client.exists("fs:card_profile:{c2}") == 1


def test_an_unreachable_redis_raises_feature_store_unavailable() -> None:
    # No retries: redis-py's default (10, with backoff) would stall the test for seconds.
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2,
                         retry=Retry(NoBackoff(), 0))
    store = RedisFeatureStore(client, CATALOG)

    with pytest.raises(FeatureStoreUnavailable):
        store.read([{"card": "c1"}], PROFILE.refs)
    with pytest.raises(FeatureStoreUnavailable):
        store.write_batch([profile_write("c1")])


def test_a_client_that_decodes_responses_is_refused(redis_server: ServerProcess) -> None:
    client = redis.Redis.from_url(redis_server.address, decode_responses=True)

    with pytest.raises(ValueError, match="decode_responses"):
        RedisFeatureStore(client, CATALOG)
