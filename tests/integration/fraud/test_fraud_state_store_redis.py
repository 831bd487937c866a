"""RedisFraudStore on a real redis-server: Redis's errors come out as the port's, never raw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from services.common.breaker import CircuitOpen
from services.common.redis_client import node_breakers
from services.fraud import state_store
from services.fraud.state_store import FraudStoreUnavailable, RedisFraudStore
from tests.harness import free_port
from tests.support.fraud_state import Txn

pytestmark = pytest.mark.integration


@pytest.fixture
def nobody_listening() -> Iterator[redis.Redis]:
    """A client on a port no server listens on: every call is refused at once."""
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    yield client
    client.close()


def test_a_redis_that_answers_records_reads_and_remembers(redis_client: redis.Redis) -> None:
    store = RedisFraudStore(redis_client)

    read = store.record_and_read([Txn()])
    earlier = store.remember([("tx100", b"decided")], 60)

    assert read.earlier_decisions == [None] and len(read.state) == 1
    assert earlier == [None]
    assert store.recall("tx100") == b"decided"


def test_every_call_to_a_redis_that_is_down_raises_the_ports_error(
        nobody_listening: redis.Redis) -> None:
    store = RedisFraudStore(nobody_listening)
    calls = {"record_and_read": lambda: store.record_and_read([Txn()]),
             "remember": lambda: store.remember([("tx100", b"decided")], 60),
             "recall": lambda: store.recall("tx100")}

    for name, call in calls.items():
        with pytest.raises(FraudStoreUnavailable, match=r"^ConnectionError: ") as raised:
            call()
        assert isinstance(raised.value.__cause__, redis.ConnectionError), name


def test_a_reply_redis_refuses_is_the_ports_error_naming_redis_error(
        redis_client: redis.Redis) -> None:
    store = RedisFraudStore(redis_client)
    redis_client.rpush(store.decision_key("tx100"), b"not a string")  # GET on it: WRONGTYPE

    with pytest.raises(FraudStoreUnavailable, match=r"^ResponseError: WRONGTYPE"):
        store.recall("tx100")


def test_behind_its_breaker_a_single_redis_that_is_down_is_skipped_for_every_transaction(
        nobody_listening: redis.Redis) -> None:
    """One server, one breaker (as before breakers per master): after fail_max failures every
    transaction is skipped without a call, and recall raises CircuitOpen."""
    store = RedisFraudStore(nobody_listening,
                            breakers=node_breakers(nobody_listening, "feature-store", 2, 60))
    for _ in range(2):
        with pytest.raises(FraudStoreUnavailable):
            store.record_and_read([Txn()])
    read = store.record_and_read([Txn(transaction_id="tx1"), Txn(transaction_id="tx2")])
    assert read.skipped == {0: "feature store skipped (circuit open: feature-store)",
                            1: "feature store skipped (circuit open: feature-store)"}
    assert len(read.state) == 0 and read.earlier_decisions == []
    assert store.remember([("tx1", b"decided")], 60) == [None]   # not stored, not raised
    with pytest.raises(CircuitOpen):
        store.recall("tx1")


def test_behind_one_servers_breaker_no_transaction_keys_are_built_to_place_them(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # One server, one breaker: placing a batch's eight keys a transaction would be wasted work
    # on the stream scorer's hot path; the records still go through the breaker.
    store = RedisFraudStore(redis_client, breakers=node_breakers(redis_client, "fs", 5, 5.0))
    monkeypatch.setattr(state_store, "entity_keys", lambda *args: pytest.fail("keys placed"))
    read = store.record_and_read([Txn(), Txn(transaction_id="tx101")])
    assert read.skipped == {} and len(read.state) == 2
    assert store.remember([("tx100", b"decided")], 60) == [None]
