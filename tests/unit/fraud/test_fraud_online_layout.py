"""The online fraud state's layout: keys, records, trims and windows, as planned calls."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from services.common.times import epoch_ms
from services.designs.fraud.commands import (
    decode_batch,
    entity_keys,
    record_calls,
    report_commands,
)
from services.designs.fraud.layout import (
    CARD_LOG,
    CARD_RECORD,
    CUSTOMER_LOG,
    DEVICE_CARDS,
    IP_CARDS,
    KEY_FAMILIES,
    MERCHANT_FRAUDS,
    MERCHANT_TX,
    SPEND_RECORD,
    TERMINAL_FRAUDS,
    TERMINAL_TX,
    digest,
)
from services.designs.fraud.scripts import (
    APPEND_CARD,
    APPEND_CUSTOMER,
    RECORD_DEVICE,
    RECORD_IP,
    RECORD_MERCHANT,
    RECORD_TERMINAL,
    SCRIPTS,
    TRIM_EVERY,
)
from services.designs.fraud.state import FraudReport
from tests.support.fraud_state import Txn

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
        (APPEND_CARD, ("fs:fraud_card_log:{card1}",)),
        (APPEND_CUSTOMER, ("fs:fraud_customer_log:{cust1}",)),
        (RECORD_TERMINAL, ("fs:fraud_terminal_tx:{term1}", "fs:fraud_terminal_frauds:{term1}")),
        (RECORD_MERCHANT, ("fs:fraud_merchant_tx:{m1}", "fs:fraud_merchant_frauds:{m1}")),
        (RECORD_DEVICE, ("fs:fraud_device_cards:{dev1}",)),
        (RECORD_IP, ("fs:fraud_ip_cards:{81.0.0.1}",)),
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
    # a call sends what varies: the record (or id and time), whether to reply, (a log's) no
    # copy to check it against, (a sorted set's) whether to trim, one transaction in TRIM_EVERY
    # by its id, and to refresh the TTL: without a plan of what the client holds, always
    trim = "1" if zlib.crc32(b"tx100") % TRIM_EVERY == 0 else "0"
    assert [args[1:] for _, _, args in calls] == [("111", b"", 0, 0)] * 2 + [
        (T, f"1{trim}1")] * 4
    assert sum(zlib.crc32(f"tx{i}".encode()) % TRIM_EVERY == 0
               for i in range(8000)) == pytest.approx(1000, rel=0.1)
    assert [args[0] for _, _, args in calls[2:]] == ["tx100", "tx100", "card1", "card1"]


def test_each_views_constants_are_written_into_its_script() -> None:
    assert "local SIZE = 56\nlocal KEEP = 3\nlocal RETENTION = 2678400000\n" \
           "local TTL = 31536000000\n" in APPEND_CARD.source
    assert "local SIZE = 24\nlocal KEEP = 0\n" in APPEND_CUSTOMER.source
    assert f"local DELAY = {7 * DAY}" in RECORD_TERMINAL.source
    assert "local COUNT_DAYS = {1, 7, 30}" in RECORD_TERMINAL.source
    assert "local COUNT_DAYS = {30}" in RECORD_MERCHANT.source
    assert f"local WINDOW = {30 * DAY}" in RECORD_DEVICE.source
    assert RECORD_DEVICE.sha == RECORD_IP.sha  # the same constants: one script for both
    assert len({s.sha for s in SCRIPTS}) == 5


def test_a_record_only_call_asks_for_no_reply() -> None:
    assert [(args[1] if i < 2 else args[2])[0]
            for i, (_, _, args) in enumerate(record_calls("fs", Txn(), read=False))] == ["0"] * 6


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


def test_entity_keys_name_the_slot_of_every_call_that_records_a_transaction() -> None:
    """The store's breakers place a transaction by these keys: they must be the calls' own."""
    txn = Txn(card_id="c9", user_id="u9", terminal_id="t9", merchant_id="m9", device_id="d9")
    calls = record_calls("fs", txn)
    assert entity_keys("fs", txn) == tuple(keys[0] for _, keys, _ in calls)
    for _, keys, _ in calls:
        assert {key_slot(key.encode()) for key in keys} == {key_slot(keys[0].encode())}


ID = st.text(st.sampled_from("ab{}%|:é 0"), min_size=1, max_size=8)


@given(ID, ID, ID, ID, ID, st.sampled_from(["fs", "bench:x", "a{b}"]))
def test_the_calls_keys_are_the_views_own_for_any_ids(card: str, user: str, terminal: str,
                                                      merchant: str, device: str,
                                                      namespace: str) -> None:
    # record_calls builds them from prefixes (one call a key, not three): the same strings
    txn = Txn(card_id=card, user_id=user, terminal_id=terminal, merchant_id=merchant,
              device_id=device)
    keys = [key for _, call_keys, _ in record_calls(namespace, txn) for key in call_keys]
    assert keys == [CARD_LOG.key(namespace, card), CUSTOMER_LOG.key(namespace, user),
                    TERMINAL_TX.key(namespace, terminal),
                    TERMINAL_FRAUDS.key(namespace, terminal),
                    MERCHANT_TX.key(namespace, merchant),
                    MERCHANT_FRAUDS.key(namespace, merchant),
                    DEVICE_CARDS.key(namespace, device), IP_CARDS.key(namespace, "81.0.0.1")]
