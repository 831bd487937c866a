"""The client's copies of the logs on real Redis: checked appends read exactly what whole reads
read, whoever else writes, whatever expires; and with one writer, the copies are used."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from services.designs.fraud.copies import StateCopies
from services.designs.fraud.features import batch_features
from services.designs.fraud.redis_state import RedisFraudState
from tests.support.fraud_state import Txn

pytestmark = pytest.mark.integration

START = datetime(2018, 6, 1, tzinfo=UTC)


def traffic(seed: int, n: int = 600) -> list[Txn]:
    """Four cards of three customers over ~6 months (so logs trim), in bursts and gaps."""
    rng, at, out = random.Random(seed), START, []
    for i in range(n):
        at += timedelta(minutes=rng.choice([1, 5, 60, 600, 1200]))
        card = rng.randrange(4)
        out.append(replace(Txn(), transaction_id=f"t{i}", card_id=f"c{card}",
                           user_id=f"u{min(card, 2)}", amount=float(rng.randrange(1, 500)),
                           timestamp=at, terminal_id=f"term{rng.randrange(3)}"))
    return out


def logs(client: redis.Redis, namespace: str) -> dict[bytes, bytes | None]:
    keys = sorted(client.keys(f"{namespace}:fraud_*_log:*"))
    return {key.split(b":", 1)[1]: client.get(key) for key in keys}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_checked_copies_read_what_whole_reads_read(redis_client: redis.Redis, seed: int) -> None:
    """Two namespaces get the same traffic, one through a client with copies, one without. Along
    the way another writer records some transactions in both (the copies go stale), some are
    delivered twice, and logs are deleted (an expiry): every batch's vectors are equal, and so
    are the logs in Redis after each batch."""
    rng = random.Random(seed)
    copied = RedisFraudState(redis_client, "a", StateCopies(max_logs=6))  # 7 logs: evictions too
    whole = RedisFraudState(redis_client, "b", StateCopies(max_logs=0))
    others = [RedisFraudState(redis_client, ns, StateCopies(max_logs=0)) for ns in "ab"]
    stream = traffic(seed)
    i = 0
    while i < len(stream):
        batch = stream[i:i + rng.randrange(1, 8)]
        i += len(batch)
        if rng.random() < 0.2:
            batch = [*batch, *rng.sample(stream[:i], 1)]  # a redelivery
        if rng.random() < 0.15:  # someone else writes the next transaction first
            for other in others:
                other.record([stream[min(i, len(stream) - 1)]])
        if rng.random() < 0.05:
            card = rng.randrange(4)
            for ns in "ab":
                redis_client.delete(f"{ns}:fraud_card_log:{{c{card}}}")
        vectors = [batch_features(batch, store.record_and_read(batch)[1]).matrix
                   for store in (copied, whole)]
        np.testing.assert_array_equal(vectors[0], vectors[1])
        assert logs(redis_client, "a") == logs(redis_client, "b")  # trimmed alike, too
    copies = copied.copies
    assert copies.checked > 300 and copies.stale > 0 and copies.trimmed > 3


def test_with_one_writer_the_copies_are_the_logs(redis_client: redis.Redis) -> None:
    store = RedisFraudState(redis_client, "fs", StateCopies())
    for txn in traffic(4):
        store.record_and_read([txn])
    copies = store.copies
    assert copies.checked > 300 and copies.stale == 0
    for key, log in logs(redis_client, "fs").items():
        assert copies._logs[f"fs:{key.decode()}"].log == log


def test_ttls_are_refreshed_once_an_hour_per_client(redis_client: redis.Redis) -> None:
    clock = [0.0]
    store = RedisFraudState(redis_client, "fs", StateCopies(clock=lambda: clock[0]))
    first, second, third = traffic(5, 3)
    store.record_and_read([first])
    keys = [b"fs:fraud_card_log:{%s}" % first.card_id.encode(),
            b"fs:fraud_terminal_tx:{%s}" % first.terminal_id.encode()]
    for key in keys:
        redis_client.pexpire(key, 5_000)  # as if the TTL had run down
    store.record_and_read([replace(second, card_id=first.card_id,
                                   terminal_id=first.terminal_id)])
    assert all(0 < redis_client.pttl(key) <= 5_000 for key in keys)  # not refreshed
    clock[0] = 3600.0
    store.record_and_read([replace(third, card_id=first.card_id, terminal_id=first.terminal_id)])
    assert all(redis_client.pttl(key) > 86_400_000 for key in keys)  # an hour on: refreshed
