"""The window scripts on real Redis give what their Python reference gives, for any history.

Hypothesis writes generated card and customer histories (times around the window edges, any
amounts, awkward ids, repeated instants, the transaction itself already written), reads them
through RedisFraudStateReader (the Lua scripts), and compares with windows.py's reference over
the members in the order Redis holds them: counts, flags, the newest uses, and sums bit for bit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.fraud_online import (
    CardUse,
    RedisFraudStateReader,
    RedisFraudStateWriter,
    Spend,
    epoch_ms,
)
from services.common.fraud_online.layout import CARD_TX, CUSTOMER_TX, SEPARATOR
from services.common.fraud_online.windows import card_windows, customer_windows
from services.common.ids import unescape
from tests.unit.test_fraud_online_features import Txn

pytestmark = pytest.mark.integration

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)
T = epoch_ms(WHEN)
EDGES_MS = (0, 1, 59_999, 60_000, 60_001, 3_599_999, 3_600_000, 3_600_001, 86_399_999,
            86_400_000, 86_400_001, 7 * 86_400_000, 30 * 86_400_000 - 1, 30 * 86_400_000,
            30 * 86_400_000 + 1)
DEVICES = ("dev1", "dev|2", "{dev}3", "dev%7C")
IPS = ("81.0.0.1", "81.0.0.2", "2001:db8::1")


def member_lists(client: redis.Redis, key: str, t: int) -> list[tuple[list[str], int]]:
    """The window's members as Redis orders them: (fields, score)."""
    replies = client.zrange(key, t - 30 * 86_400_000, f"({t}", byscore=True, withscores=True)
    return [(member.decode().split(SEPARATOR), int(score)) for member, score in replies]


uses = st.lists(st.tuples(
    st.one_of(st.sampled_from(EDGES_MS), st.integers(0, 31 * 86_400_000)),  # ms before T
    st.sampled_from(("tx1", "tx2", "tx|3", "{tx}4", "tx5", "tx100")),
    st.sampled_from((0.01, 1.0, 4.99, 5.0, 12.5, 0.1, 0.2, 1e5 / 3)),
    st.sampled_from(DEVICES), st.sampled_from(IPS)), max_size=25)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=uses, device=st.sampled_from(DEVICES), ip=st.sampled_from(IPS))
def test_the_scripts_sum_the_windows_exactly_as_the_reference(
        redis_client: redis.Redis, history: list[tuple[int, str, float, str, str]],
        device: str, ip: str) -> None:
    redis_client.flushdb()
    writer = RedisFraudStateWriter(redis_client)
    for i, (ago, tid, amount, used_device, used_ip) in enumerate(history):
        at = WHEN - timedelta(milliseconds=ago)
        writer.apply([replace(Txn(), transaction_id=f"{tid}-{i % 3}", timestamp=at,
                              amount=amount, device_id=used_device, ip_address=used_ip)])
    current = replace(Txn(), transaction_id="tx100-0", device_id=device, ip_address=ip)
    state = RedisFraudStateReader(redis_client).read(current)

    card = [CardUse(at, unescape(f[0]), float(f[1]), float(f[2]), float(f[3]), unescape(f[4]),
                    f[5]) for f, at in member_lists(redis_client, CARD_TX.key("fs", "card1"), T)]
    spends = [Spend(at, unescape(f[0]), float(f[1]))
              for f, at in member_lists(redis_client, CUSTOMER_TX.key("fs", "cust1"), T)]
    assert state.card == card_windows(card, T, "tx100-0", device, ip)
    assert state.customer == customer_windows(spends, T, "tx100-0")
