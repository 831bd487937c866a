"""The online fraud state's layout: keys, members, trims and windows, as commands (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.crc import key_slot

from services.common.fraud_online import (
    VIEWS,
    FraudReport,
    decode_state,
    epoch_ms,
    read_commands,
    write_commands,
)
from tests.unit.test_fraud_online_features import Txn

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)
T = epoch_ms(WHEN)
DAY = 86_400_000


def zadds(commands: list[tuple[str | int, ...]]) -> dict[str, tuple[str | int, ...]]:
    return {str(c[1]): c[2:] for c in commands if c[0] == "ZADD"}


def test_epoch_ms_is_exact_and_refuses_naive_times() -> None:
    assert epoch_ms(datetime(2018, 7, 4, 12, 0, 0, 123_000, tzinfo=UTC)) == 1_530_705_600_123
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_ms(datetime(2018, 7, 4))


def test_keys_are_namespace_view_and_a_hash_tagged_entity() -> None:
    keys = {str(c[1]) for c in write_commands("fs", [Txn()])}
    assert keys == {
        "fs:fraud_customer_tx:{cust1}", "fs:fraud_card_tx:{card1}", "fs:fraud_card_latest:{card1}",
        "fs:fraud_terminal_tx:{term1}", "fs:fraud_merchant_tx:{m1}",
        "fs:fraud_device_cards:{dev1}", "fs:fraud_ip_cards:{81.0.0.1}"}
    assert len({key_slot(k.encode()) for k in keys if "{card1}" in k}) == 1
    assert {v.name for v in VIEWS} >= {k.split(":")[1] for k in keys}


def test_a_transaction_is_stored_as_the_documented_members() -> None:
    members = zadds(write_commands("fs", [Txn(amount=12.5, latitude=50.25, longitude=5.5)]))
    assert members == {
        "fs:fraud_customer_tx:{cust1}": (T, "tx100|12.5"),
        "fs:fraud_card_tx:{card1}": (T, "tx100|12.5|50.25|5.5|dev1|81.0.0.1"),
        "fs:fraud_card_latest:{card1}": (T, "tx100|50.25|5.5"),
        "fs:fraud_terminal_tx:{term1}": (T, "tx100"),
        "fs:fraud_merchant_tx:{m1}": (T, "tx100"),
        "fs:fraud_device_cards:{dev1}": ("GT", T, "card1"),
        "fs:fraud_ip_cards:{81.0.0.1}": ("GT", T, "card1"),
    }


def test_a_fraud_report_is_stored_by_transaction_time_with_its_arrival() -> None:
    report = FraudReport("tx7", "term3", "m2", WHEN, known_at=WHEN + timedelta(days=2))
    assert zadds(write_commands("fs", frauds=[report])) == {
        "fs:fraud_terminal_frauds:{term3}": (T, f"tx7|{T + 2 * DAY}"),
        "fs:fraud_merchant_frauds:{m2}": (T, f"tx7|{T + 2 * DAY}"),
    }


def test_a_redelivered_transaction_plans_the_same_members() -> None:
    once = zadds(write_commands("fs", [Txn()]))
    assert zadds(write_commands("fs", [Txn(), Txn()])) == once


def test_a_batch_sends_one_zadd_trim_and_expiry_per_key() -> None:
    later = Txn(transaction_id="tx101", timestamp=WHEN + timedelta(hours=1), device_id="dev2")
    commands = write_commands("fs", [Txn(), later])
    card = [c for c in commands if c[1] == "fs:fraud_card_tx:{card1}"]
    assert [c[0] for c in card] == ["ZADD", "ZREMRANGEBYSCORE", "PEXPIRE"]
    assert len(card[0]) == 2 + 4  # two (score, member) pairs


def test_trims_are_relative_to_event_time_not_the_wall_clock() -> None:
    trims = {str(c[1]): c[3] for c in write_commands("fs", [Txn()]) if c[0] == "ZREMRANGEBYSCORE"}
    assert trims["fs:fraud_card_tx:{card1}"] == f"({T - 31 * DAY}"
    assert trims["fs:fraud_terminal_tx:{term1}"] == f"({T - 38 * DAY}"
    ranks = [c for c in write_commands("fs", [Txn()]) if c[0] == "ZREMRANGEBYRANK"]
    assert ranks == [("ZREMRANGEBYRANK", "fs:fraud_card_latest:{card1}", 0, -4)]


def test_every_key_gets_a_ttl_that_bounds_memory() -> None:
    ttls = {str(c[1]): c[2] for c in write_commands("fs", [Txn()]) if c[0] == "PEXPIRE"}
    assert ttls["fs:fraud_card_tx:{card1}"] == 31 * DAY
    assert ttls["fs:fraud_card_latest:{card1}"] == 365 * DAY
    assert len(ttls) == 7


def test_a_read_windows_each_view_before_the_transaction() -> None:
    commands = read_commands("fs", Txn())
    assert commands[1] == ("ZRANGE", "fs:fraud_card_tx:{card1}", T - 30 * DAY, f"({T}",
                           "BYSCORE", "WITHSCORES")
    assert commands[3] == ("ZCOUNT", "fs:fraud_terminal_tx:{term1}", T - 8 * DAY, f"({T - 7 * DAY}")
    assert commands[5] == ("ZCOUNT", "fs:fraud_terminal_tx:{term1}", T - 37 * DAY,
                           f"({T - 7 * DAY}")
    assert commands[-1] == ("ZSCORE", "fs:fraud_ip_cards:{81.0.0.1}", "card1")


@pytest.mark.parametrize("card_reply", [
    [[b"tx1|2.5|50.0|5.0|dev1|81.0.0.1", 1.5e12]],      # RESP3: [member, score] pairs
    [b"tx1|2.5|50.0|5.0|dev1|81.0.0.1", b"1500000000000"],  # RESP2: flat, bytes
])
def test_replies_decode_the_same_over_resp2_and_resp3(card_reply: list[object]) -> None:
    replies: list[object] = [[], card_reply, [], 1, 2, 3, [], 4, [], 5, None, 6, b"1499999999000"]
    state = decode_state(replies)
    assert state.card_30d[0].at_ms == 1_500_000_000_000
    assert state.card_30d[0].amount == 2.5 and state.card_30d[0].device_id == "dev1"
    assert state.terminal_counts == (1, 2, 3) and state.merchant_count_30d == 4
    assert (state.device_card_last_seen_ms, state.ip_card_last_seen_ms) == (None, 1_499_999_999_000)
