"""The online fraud state's layout: keys, records, trims and windows, as planned calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from redis.crc import key_slot

from services.common.fraud_online import (
    KEY_FAMILIES,
    FraudReport,
    decode_batch,
    digest,
    epoch_ms,
    record_calls,
    report_commands,
)
from services.common.fraud_online.layout import CARD_RECORD, SPEND_RECORD
from services.common.fraud_online.scripts import APPEND_LOG, RECORD_ACTIVITY, RECORD_LAST_SEEN
from tests.unit.test_fraud_online_features import Txn

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)
T = epoch_ms(WHEN)
DAY = 86_400_000


def test_epoch_ms_is_exact_and_refuses_naive_times() -> None:
    assert epoch_ms(datetime(2018, 7, 4, 12, 0, 0, 123_000, tzinfo=UTC)) == 1_530_705_600_123
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_ms(datetime(2018, 7, 4))


def test_one_call_per_entity_and_each_calls_keys_share_one_slot() -> None:
    calls = record_calls("fs", Txn())
    assert [(script, keys) for script, keys, _ in calls] == [
        (APPEND_LOG, ("fs:fraud_card_log:{card1}",)),
        (APPEND_LOG, ("fs:fraud_customer_log:{cust1}",)),
        (RECORD_ACTIVITY, ("fs:fraud_terminal_tx:{term1}", "fs:fraud_terminal_frauds:{term1}")),
        (RECORD_ACTIVITY, ("fs:fraud_merchant_tx:{m1}", "fs:fraud_merchant_frauds:{m1}")),
        (RECORD_LAST_SEEN, ("fs:fraud_device_cards:{dev1}",)),
        (RECORD_LAST_SEEN, ("fs:fraud_ip_cards:{81.0.0.1}",)),
    ]
    for _, keys, _ in calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1
        assert {k.split(":")[1] for k in keys} <= set(KEY_FAMILIES)


def test_a_transaction_is_recorded_as_the_documented_records() -> None:
    calls = record_calls("fs", Txn(amount=12.5, latitude=50.25, longitude=5.5))
    card = np.frombuffer(calls[0][2][0], dtype=CARD_RECORD)[0]
    assert (card["at_ms"], card["tx"], card["amount"], card["latitude"], card["longitude"],
            card["device"], card["ip"]) == (T, digest("tx100"), 12.5, 50.25, 5.5,
                                           digest("dev1"), digest("81.0.0.1"))
    spend = np.frombuffer(calls[1][2][0], dtype=SPEND_RECORD)[0]
    assert (spend["at_ms"], spend["tx"], spend["amount"]) == (T, digest("tx100"), 12.5)
    # record, record size, trim cutoff, keep newest, TTL, reply
    assert calls[0][2][1:] == (56, T - 31 * DAY, 3, 365 * DAY, 1)
    assert calls[1][2][1:] == (24, T - 31 * DAY, 0, 31 * DAY, 1)


def test_reads_window_each_entity_before_the_transaction() -> None:
    calls = record_calls("fs", Txn())
    terminal, merchant, device = calls[2][2], calls[3][2], calls[4][2]
    assert terminal[:4] == ("tx100", T, T - 38 * DAY, 38 * DAY)
    assert terminal[4:6] == (T - 37 * DAY, f"({T - 7 * DAY}")           # reports' range
    assert terminal[6:] == (T - 8 * DAY, f"({T - 7 * DAY}", T - 14 * DAY, f"({T - 7 * DAY}",
                            T - 37 * DAY, f"({T - 7 * DAY}")            # counts: 1, 7, 30 d
    assert merchant[6:] == (T - 37 * DAY, f"({T - 7 * DAY}")
    assert device == ("card1", T, T - 31 * DAY, 31 * DAY, T - 30 * DAY)


def test_a_record_only_call_asks_for_no_reply() -> None:
    calls = record_calls("fs", Txn(), read=False)
    assert calls[0][2][-1] == 0 and calls[1][2][-1] == 0
    assert len(calls[2][2]) == 4 and len(calls[4][2]) == 4


def test_a_fraud_report_is_stored_by_transaction_time_with_its_arrival() -> None:
    report = FraudReport("tx7", "term3", "m2", WHEN, known_at=WHEN + timedelta(days=2))
    commands = report_commands("fs", [report, report])
    assert [c for c in commands if c[0] == "ZADD"] == [
        ("ZADD", "fs:fraud_terminal_frauds:{term3}", T, f"tx7|{T + 2 * DAY}"),
        ("ZADD", "fs:fraud_merchant_frauds:{m2}", T, f"tx7|{T + 2 * DAY}"),
    ]
    assert ("ZREMRANGEBYSCORE", "fs:fraud_terminal_frauds:{term3}", "-inf",
            f"({T - 38 * DAY}") in commands
    assert ("PEXPIRE", "fs:fraud_merchant_frauds:{m2}", 38 * DAY) in commands


@pytest.mark.parametrize("frauds_reply", [
    [[b"tx1|1500000000001", 1.5e12]],            # RESP3: [member, score] pairs
    [b"tx1|1500000000001", b"1500000000000"],   # RESP2: flat, bytes
])
def test_replies_decode_the_same_over_resp2_and_resp3(frauds_reply: list[object]) -> None:
    card = record_calls("fs", Txn(amount=2.5))[0][2][0]
    assert isinstance(card, bytes)
    replies = [[card + b"\x00" * 5, None, [frauds_reply, 1, 2, 3], [[], 4], [5, None],
                [6, b"1499999999000"]]]
    state = decode_batch(replies)
    assert len(state.card) == 1 and state.card["amount"][0] == 2.5  # a torn tail is ignored
    assert len(state.customer) == 0
    assert state.terminal_frauds[0][0].known_ms == 1_500_000_000_001
    assert list(state.terminal_counts[0]) == [1, 2, 3] and state.merchant_count_30d[0] == 4
    assert np.isnan(state.device_card_last_seen_ms[0])
    assert state.ip_card_last_seen_ms[0] == 1_499_999_999_000
