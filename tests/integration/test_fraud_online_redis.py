"""The online fraud state on real Redis: stored layout, one round trip, idempotence, trimming."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster

from services.common.catalog import FRAUD_FEATURE_NAMES
from services.common.fraud_online import (
    FraudReport,
    RedisFraudStateReader,
    RedisFraudStateWriter,
    epoch_ms,
    fraud_features,
)
from tests.harness import ServerProcess
from tests.unit.test_fraud_online_features import Txn

pytestmark = pytest.mark.integration

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)  # the synthetic world's calendar, not today
T = epoch_ms(WHEN)
DAY = 86_400_000


def txn(i: int, at: datetime, **fields: Any) -> Txn:
    return replace(Txn(), transaction_id=f"tx{i}", timestamp=at, **fields)


def dump(client: redis.Redis) -> dict[object, object]:
    """Every key with its (member, score) pairs."""
    return {key: client.zrange(key, 0, -1, withscores=True) for key in sorted(client.keys("*"))}




def test_state_is_stored_under_the_documented_keys_with_ttls(redis_client: redis.Redis) -> None:
    RedisFraudStateWriter(redis_client).apply(
        [txn(1, WHEN, amount=12.5)],
        [FraudReport("tx0", "term1", "m1", WHEN - timedelta(days=8), WHEN - timedelta(days=2))])

    assert dump(redis_client) == {
        b"fs:fraud_card_latest:{card1}": [(b"tx1|50.0|5.0", T)],
        b"fs:fraud_card_tx:{card1}": [(b"tx1|12.5|50.0|5.0|dev1|81.0.0.1", T)],
        b"fs:fraud_customer_tx:{cust1}": [(b"tx1|12.5", T)],
        b"fs:fraud_device_cards:{dev1}": [(b"card1", T)],
        b"fs:fraud_ip_cards:{81.0.0.1}": [(b"card1", T)],
        b"fs:fraud_merchant_frauds:{m1}": [(f"tx0|{T - 2 * DAY}".encode(), T - 8 * DAY)],
        b"fs:fraud_merchant_tx:{m1}": [(b"tx1", T)],
        b"fs:fraud_terminal_frauds:{term1}": [(f"tx0|{T - 2 * DAY}".encode(), T - 8 * DAY)],
        b"fs:fraud_terminal_tx:{term1}": [(b"tx1", T)],
    }
    assert 30 * DAY < redis_client.pttl("fs:fraud_card_tx:{card1}") <= 31 * DAY
    assert 37 * DAY < redis_client.pttl("fs:fraud_terminal_tx:{term1}") <= 38 * DAY


def test_a_flush_of_many_transactions_and_a_read_are_one_round_trip_each(
        redis_client: redis.Redis, round_trips: list[int]) -> None:
    writer, reader = RedisFraudStateWriter(redis_client), RedisFraudStateReader(redis_client)
    redis_client.ping()  # the connection's handshake is not part of what we count
    round_trips.clear()

    writer.apply([txn(i, WHEN + timedelta(minutes=i), card_id=f"card{i % 7}")
                  for i in range(500)])
    writes = len(round_trips)
    reader.read(txn(999, WHEN + timedelta(days=1)))

    assert (writes, len(round_trips)) == (1, 2)


def test_redelivered_events_change_nothing(redis_client: redis.Redis) -> None:
    writer = RedisFraudStateWriter(redis_client)
    events = [txn(i, WHEN + timedelta(hours=i)) for i in range(5)]
    report = FraudReport("tx1", "term1", "m1", WHEN, WHEN + timedelta(days=3))
    writer.apply(events, [report])
    once = dump(redis_client)

    writer.apply(events[2:], [report])
    writer.apply(events[:1])

    assert dump(redis_client) == once


def test_scoring_after_the_stream_wrote_the_transaction_gives_the_same_vector(
        redis_client: redis.Redis) -> None:
    writer, reader = RedisFraudStateWriter(redis_client), RedisFraudStateReader(redis_client)
    writer.apply([txn(1, WHEN - timedelta(days=40), device_id="dev7"),
                  txn(2, WHEN - timedelta(minutes=5), device_id="dev2", card_id="card2")])
    current = txn(3, WHEN, device_id="dev2")
    before = fraud_features(current, reader.read(current))

    writer.apply([current, current])  # the stream got there first, and redelivered it

    np.testing.assert_array_equal(fraud_features(current, reader.read(current)), before)
    got = dict(zip(FRAUD_FEATURE_NAMES, before.tolist(), strict=True))
    assert got["seconds_since_last_tx"] == 40 * 86_400  # older than every window
    assert (got["is_new_device"], got["device_nb_cards_30d"]) == (1.0, 1.0)


def test_old_members_are_trimmed_relative_to_event_time(redis_client: redis.Redis) -> None:
    writer = RedisFraudStateWriter(redis_client)
    writer.apply([txn(1, WHEN - timedelta(days=32)), txn(2, WHEN - timedelta(days=20))])
    writer.apply([txn(3, WHEN)])

    # years in the past, yet only what is older than the newest event's retention goes
    assert redis_client.zrange("fs:fraud_card_tx:{card1}", 0, -1) == [
        b"tx2|50.0|50.0|5.0|dev1|81.0.0.1", b"tx3|50.0|50.0|5.0|dev1|81.0.0.1"]
    assert redis_client.zcard("fs:fraud_terminal_tx:{term1}") == 3  # kept 38 days
    assert redis_client.zcard("fs:fraud_card_latest:{card1}") == 3


def test_a_cards_last_use_on_a_device_never_moves_back(redis_client: redis.Redis) -> None:
    writer = RedisFraudStateWriter(redis_client)
    writer.apply([txn(2, WHEN)])
    writer.apply([txn(1, WHEN - timedelta(days=2))])  # a late event from another partition

    assert redis_client.zscore("fs:fraud_device_cards:{dev1}", "card1") == T


@pytest.mark.parametrize("protocol", [2, 3])
def test_reads_decode_over_either_redis_protocol(redis_server: ServerProcess,
                                                 redis_client: redis.Redis,
                                                 protocol: int) -> None:
    RedisFraudStateWriter(redis_client).apply(
        [txn(1, WHEN - timedelta(hours=2), amount=3.0), txn(2, WHEN - timedelta(minutes=30))])
    client = redis.Redis.from_url(redis_server.address, protocol=protocol)
    try:
        state = RedisFraudStateReader(client).read(txn(3, WHEN))
    finally:
        client.close()
    assert [u.transaction_id for u in state.card_30d] == ["tx1", "tx2"]
    assert state.device_card_last_seen_ms == T - 30 * 60_000
    assert state.device_cards_30d == 1


def test_a_client_that_decodes_responses_is_refused(redis_server: ServerProcess) -> None:
    client = redis.Redis.from_url(redis_server.address, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisFraudStateReader(client)
    client.close()


def test_writes_and_reads_run_on_redis_cluster(request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue("redis_cluster_server")
    cluster = RedisCluster.from_url(server.address)
    try:
        cluster.flushall()
        RedisFraudStateWriter(cluster).apply(
            [txn(1, WHEN - timedelta(hours=2), amount=3.0), txn(2, WHEN - timedelta(minutes=30))],
            [FraudReport("tx0", "term1", "m1", WHEN - timedelta(days=8), WHEN - timedelta(days=2))])
        state = RedisFraudStateReader(cluster).read(txn(3, WHEN))
    finally:
        cluster.close()
    assert [u.transaction_id for u in state.card_30d] == ["tx1", "tx2"]
    assert [f.transaction_id for f in state.merchant_frauds] == ["tx0"]
