"""The online fraud state on real Redis: stored layout, one round trip, idempotence, trimming,
script reloading, both protocols and Redis Cluster."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster

from services.common.times import epoch_ms
from services.designs.fraud.features import batch_features
from services.designs.fraud.layout import CARD_RECORD, SPEND_RECORD, digest
from services.designs.fraud.redis_state import ENTITIES_PER_CALL, RedisFraudState
from services.designs.fraud.scripts import TRIM_EVERY
from services.designs.fraud.state import FraudReport
from services.designs.model_features import FRAUD_FEATURE_NAMES
from tests.harness import ServerProcess
from tests.support.fraud_state import Txn

pytestmark = pytest.mark.integration

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)  # the synthetic world's calendar, not today
T = epoch_ms(WHEN)
DAY = 86_400_000


def txn(i: int, at: datetime, **fields: Any) -> Txn:
    return replace(Txn(), transaction_id=f"tx{i}", timestamp=at, **fields)


def card_log(client: redis.Redis | RedisCluster, card: str = "card1") -> np.ndarray:
    return np.frombuffer(client.get(f"fs:fraud_card_log:{{{card}}}") or b"", dtype=CARD_RECORD)


def sorted_sets(client: redis.Redis) -> dict[object, object]:
    return {key: client.zrange(key, 0, -1, withscores=True)
            for key in sorted(client.keys("*")) if client.type(key) == b"zset"}


def features(store: RedisFraudState, *batch: Txn) -> dict[str, float]:
    _, state = store.record_and_read(list(batch))
    vector = batch_features(list(batch), state).matrix[-1]
    return dict(zip(FRAUD_FEATURE_NAMES, vector.tolist(), strict=True))


def test_state_is_stored_under_the_documented_keys_with_ttls(redis_client: redis.Redis) -> None:
    RedisFraudState(redis_client).record(
        [txn(1, WHEN, amount=12.5)],
        [FraudReport("tx0", "term1", "m1", WHEN - timedelta(days=8), WHEN - timedelta(days=2))])

    card = card_log(redis_client)
    assert card.tolist() == [(T, digest("tx1"), 12.5, 50.0, 5.0, digest("dev1"),
                              digest("81.0.0.1"))]
    spend = np.frombuffer(redis_client.get("fs:fraud_customer_log:{cust1}") or b"",
                          dtype=SPEND_RECORD)
    assert spend.tolist() == [(T, digest("tx1"), 12.5)]
    assert sorted_sets(redis_client) == {
        b"fs:fraud_device_cards:{dev1}": [(b"card1", T)],
        b"fs:fraud_ip_cards:{81.0.0.1}": [(b"card1", T)],
        b"fs:fraud_merchant_frauds:{m1}": [(f"tx0|{T - 2 * DAY}".encode(), T - 8 * DAY)],
        b"fs:fraud_merchant_tx:{m1}": [(b"tx1", T)],
        b"fs:fraud_terminal_frauds:{term1}": [(f"tx0|{T - 2 * DAY}".encode(), T - 8 * DAY)],
        b"fs:fraud_terminal_tx:{term1}": [(b"tx1", T)],
    }
    assert 364 * DAY < redis_client.pttl("fs:fraud_card_log:{card1}") <= 365 * DAY
    assert 30 * DAY < redis_client.pttl("fs:fraud_customer_log:{cust1}") <= 31 * DAY
    assert 37 * DAY < redis_client.pttl("fs:fraud_terminal_tx:{term1}") <= 38 * DAY


def test_recording_and_reading_a_batch_is_one_round_trip(
        redis_client: redis.Redis, round_trips: list[int]) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(0, WHEN)])  # loads the scripts: not part of what we count
    round_trips.clear()

    store.record([txn(i, WHEN + timedelta(minutes=i), card_id=f"card{i % 7}")
                  for i in range(500)])
    writes = len(round_trips)
    _, state = store.record_and_read([txn(999 + i, WHEN + timedelta(days=1)) for i in range(50)])

    assert (writes, len(round_trips)) == (1, 2)
    assert len(state) == 50


def test_a_restarted_redis_gets_its_scripts_again(redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(1, WHEN)])
    redis_client.script_flush()  # what a restart without persistence does to loaded scripts
    features(store, txn(2, WHEN + timedelta(minutes=1)))
    assert len(card_log(redis_client)) == 2


def test_redelivered_events_change_nothing(redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    events = [txn(i, WHEN + timedelta(hours=i)) for i in range(5)]
    report = FraudReport("tx1", "term1", "m1", WHEN, WHEN + timedelta(days=3))
    store.record(events, [report])
    once = (card_log(redis_client).tolist(), sorted_sets(redis_client))

    store.record(events[2:], [report])
    store.record(events[:1])

    assert (card_log(redis_client).tolist(), sorted_sets(redis_client)) == once


def test_a_transaction_is_in_a_log_once_however_far_back_it_was_recorded(
        redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(i, WHEN - timedelta(minutes=40 - i)) for i in range(40)])
    store.record([txn(0, WHEN - timedelta(minutes=40))])  # 40 records back: found, not added
    assert len(card_log(redis_client)) == 40
    assert features(store, txn(99, WHEN))["card_nb_tx_1h"] == 40


def test_a_digest_that_spans_two_fields_is_not_taken_for_a_transaction(
        redis_client: redis.Redis) -> None:
    """The append finds the digest as bytes; only a find at a record's digest field counts."""
    store = RedisFraudState(redis_client)
    store.record([txn(1, WHEN)])
    record = bytearray(card_log(redis_client).tobytes())
    lure = txn(2, WHEN + timedelta(minutes=1))
    # plant tx2's digest across the amount field of tx1's record (bytes 17-24), not at 9-16
    record[16:24] = digest("tx2").to_bytes(8, "little")
    redis_client.set("fs:fraud_card_log:{card1}", bytes(record))
    store.record([lure])
    assert len(card_log(redis_client)) == 2


def test_scoring_after_the_stream_wrote_the_transaction_gives_the_same_vector(
        redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(1, WHEN - timedelta(days=40), device_id="dev7"),
                  txn(2, WHEN - timedelta(minutes=5), device_id="dev2", card_id="card2")])
    current = txn(3, WHEN, device_id="dev2")
    before = features(store, current)

    store.record([current, current])  # the stream processor got there too, and redelivered it

    assert features(store, current) == before
    assert before["seconds_since_last_tx"] == 40 * 86_400  # older than every window
    assert (before["is_new_device"], before["device_nb_cards_30d"]) == (1.0, 1.0)


def test_a_batch_sees_its_own_earlier_transactions(redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    burst = [txn(i, WHEN + timedelta(seconds=10 * i), amount=1.0) for i in range(4)]
    _, state = store.record_and_read(burst)
    matrix = batch_features(burst, state).matrix
    small = FRAUD_FEATURE_NAMES.index("card_nb_small_tx_1h")
    assert matrix[:, small].tolist() == [0, 1, 2, 3]


def test_a_batch_larger_than_one_call_reads_what_one_by_one_reads(
        redis_client: redis.Redis) -> None:
    """A batch goes as a few gathered calls per view (ENTITIES_PER_CALL entities each): its
    vectors equal those of the same transactions recorded and read one at a time."""
    assert ENTITIES_PER_CALL < 300
    batch = [txn(i, WHEN + timedelta(minutes=i), card_id=f"card{i % 5}", user_id=f"cust{i % 3}",
                 terminal_id=f"term{i % 11}", amount=float(i % 40)) for i in range(300)]
    gathered = batch_features(batch, RedisFraudState(redis_client, "a").record_and_read(batch)[1])
    alone = RedisFraudState(redis_client, "b")
    one_by_one = np.vstack([batch_features([t], alone.record_and_read([t])[1]).matrix
                            for t in batch])
    np.testing.assert_array_equal(gathered.matrix, one_by_one)


def trims(i: int) -> bool:
    """Whether transaction `txn(i)`'s calls trim the sorted sets (one in TRIM_EVERY)."""
    return zlib.crc32(f"tx{i}".encode()) % TRIM_EVERY == 0


def test_old_records_are_trimmed_relative_to_event_time_keeping_the_newest(
        redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(i, WHEN - timedelta(days=60, minutes=-i)) for i in range(20)])
    trimming = next(i for i in range(100, 200) if trims(i))
    store.record([txn(trimming, WHEN)])

    # years in the past, yet what goes is only what is older than the newest event's retention
    kept = card_log(redis_client)
    assert kept["tx"].tolist() == [digest("tx18"), digest("tx19"), digest(f"tx{trimming}")]
    assert redis_client.zcard("fs:fraud_terminal_tx:{term1}") == 1  # 38 days
    assert redis_client.zcard("fs:fraud_device_cards:{dev1}") == 1
    assert features(store, txn(trimming + 1, WHEN + timedelta(minutes=1)))["card_nb_tx_24h"] == 1


def test_a_set_not_trimmed_yet_reads_as_if_it_were(redis_client: redis.Redis) -> None:
    """Between trims a sorted set holds members older than its retention; every read is bounded
    by time (a last use older than the retention reads as none), so the features are those of a
    trimmed set: checked against one, with old cards on the device, old transactions on the
    terminal, and one old card coming back."""
    untrimmed, trimmed = (RedisFraudState(redis_client, namespace) for namespace in ("a", "b"))
    old = [i for i in range(200) if not trims(i)][:5]
    history = [txn(i, WHEN - timedelta(days=45, minutes=-i), card_id=f"old{i}") for i in old]
    keep = next(i for i in range(300, 400) if not trims(i))
    trim = next(i for i in range(300, 400) if trims(i))
    untrimmed.record([*history, txn(keep, WHEN - timedelta(minutes=5))])
    trimmed.record([*history, txn(trim, WHEN - timedelta(minutes=5))])
    for view in ("device_cards:{dev1}", "terminal_tx:{term1}"):
        assert redis_client.zcard(f"a:fraud_{view}") == len(old) + 1  # the stale ones kept
        assert redis_client.zcard(f"b:fraud_{view}") == 1

    later = [txn(500, WHEN, card_id=f"old{old[0]}"), txn(501, WHEN + timedelta(minutes=1))]
    matrices = []
    for store in (untrimmed, trimmed):
        _, state = store.record_and_read(later)
        matrices.append(batch_features(later, state).matrix)
    np.testing.assert_array_equal(matrices[0], matrices[1])


def test_a_cards_last_use_on_a_device_never_moves_back(redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client)
    store.record([txn(2, WHEN)])
    store.record([txn(1, WHEN - timedelta(days=2))])  # a late event from another partition

    assert redis_client.zscore("fs:fraud_device_cards:{dev1}", "card1") == T


@pytest.mark.parametrize("protocol", [2, 3])
def test_reads_decode_over_either_redis_protocol(redis_server: ServerProcess,
                                                 redis_client: redis.Redis,
                                                 protocol: int) -> None:
    RedisFraudState(redis_client).record(
        [txn(1, WHEN - timedelta(hours=2), amount=3.0), txn(2, WHEN - timedelta(minutes=30))],
        [FraudReport("tx0", "term1", "m1", WHEN - timedelta(days=8), WHEN - timedelta(days=2))])
    client = redis.Redis.from_url(redis_server.address, protocol=protocol)
    try:
        _, state = RedisFraudState(client).record_and_read([txn(3, WHEN)])
    finally:
        client.close()
    assert state.card["tx"].tolist() == [digest("tx1"), digest("tx2"), digest("tx3")]
    assert state.device_card_last_seen_ms.tolist() == [T - 30 * 60_000]
    assert state.device_cards_30d.tolist() == [1]
    assert [f.transaction_id for f in state.terminal_frauds[0]] == ["tx0"]


def test_a_client_that_decodes_responses_is_refused(redis_server: ServerProcess) -> None:
    client = redis.Redis.from_url(redis_server.address, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisFraudState(client)
    client.close()


def test_records_and_reads_run_on_redis_cluster(request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue("redis_cluster_server")
    cluster = RedisCluster.from_url(server.address)
    try:
        cluster.flushall()
        cluster.script_flush()
        store = RedisFraudState(cluster)
        store.record(
            [txn(1, WHEN - timedelta(hours=2), amount=3.0), txn(2, WHEN - timedelta(minutes=30))],
            [FraudReport("tx0", "term1", "m1", WHEN - timedelta(days=8), WHEN - timedelta(days=2))])
        got = features(store, txn(3, WHEN))
        _, state = store.record_and_read([txn(3, WHEN)])
    finally:
        cluster.close()
    assert got["card_nb_tx_24h"] == 2 and got["card_nb_tx_1h"] == 1
    assert [f.transaction_id for f in state.merchant_frauds[0]] == ["tx0"]
