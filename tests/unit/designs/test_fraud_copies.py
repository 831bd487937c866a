"""The client's plan against its copies of the logs (copies.py), on scripted replies."""

from __future__ import annotations

import struct

from services.designs.fraud.copies import REFRESH_EVERY_S, StateCopies
from services.designs.fraud.layout import CUSTOMER_LOG, MS_DAY, spend_record

KEY = "fs:fraud_customer_log:{u1}"
SIZE = CUSTOMER_LOG.record.itemsize


def record(i: int, at_ms: int = 40 * MS_DAY) -> bytes:
    return spend_record(at_ms + i, f"tx{i}", float(i))


def settled(copies: StateCopies, rec: bytes, reply: bytes | int) -> tuple[tuple[object, ...],
                                                                           bytes]:
    plan = copies.plan()
    args = plan.log_args(CUSTOMER_LOG, KEY, rec)
    return args, plan.settle([reply])[0]


def test_without_a_copy_the_whole_log_is_asked_for_and_kept() -> None:
    copies = StateCopies()
    args, log = settled(copies, record(1), record(1))
    assert args == (record(1), "111", b"", 0, 0)
    assert log == record(1) and copies.checked == 0


def test_with_a_copy_its_length_and_newest_record_are_sent_and_the_length_suffices() -> None:
    copies = StateCopies()
    settled(copies, record(1), record(1))
    args, log = settled(copies, record(2), 2 * SIZE)
    assert args == (record(2), "110", record(1), SIZE, 0)  # appended, TTL fresh
    assert log == record(1) + record(2) and (copies.checked, copies.stale) == (1, 0)


def test_a_transaction_the_copy_holds_is_not_appended_again() -> None:
    copies = StateCopies()
    settled(copies, record(1), record(1))
    args, log = settled(copies, record(1), SIZE)
    assert args[1] == "100" and log == record(1)


def test_a_digest_found_off_its_field_is_not_a_record_of_it() -> None:
    copies = StateCopies()
    tx_digest = record(1)[8:16]
    odd = struct.pack("<q", 40 * MS_DAY) + b"\x00" * 8 + tx_digest[:8]  # digest in the amount
    settled(copies, record(0), odd)
    args, _ = settled(copies, record(1), 2 * SIZE)
    assert args[1] == "110"


def test_a_stale_copy_is_replaced_by_the_log_redis_replies_with() -> None:
    copies = StateCopies()
    settled(copies, record(1), record(1))
    _, log = settled(copies, record(3), record(1) + record(2) + record(3))
    assert log == record(1) + record(2) + record(3) and copies.stale == 1
    args, _ = settled(copies, record(4), 4 * SIZE)
    assert args[2:4] == (record(3), 3 * SIZE)


def test_the_copy_trims_as_the_script_would() -> None:
    """CUSTOMER_LOG keeps no newest records: 16 or more older than the retention go at once."""
    old = b"".join(record(i, at_ms=0) for i in range(20))
    copies = StateCopies()
    settled(copies, record(99, at_ms=0), old)
    fresh = record(100, at_ms=CUSTOMER_LOG.retention_ms + 1_000)
    args, log = settled(copies, fresh, SIZE)
    assert args[4] == 20 * SIZE and log == fresh and copies.trimmed == 1


def test_a_key_twice_in_one_batch_is_read_whole_the_second_time() -> None:
    copies = StateCopies()
    settled(copies, record(1), record(1))
    plan = copies.plan()
    first = plan.log_args(CUSTOMER_LOG, KEY, record(2))
    second = plan.log_args(CUSTOMER_LOG, KEY, record(3))
    assert first[2] == record(1) and second[2] == b""
    logs = plan.settle([2 * SIZE, record(1) + record(2) + record(3)])
    assert logs == [record(1) + record(2), record(1) + record(2) + record(3)]


def test_ttls_are_refreshed_when_an_hour_has_passed() -> None:
    now = [0.0]
    copies = StateCopies(clock=lambda: now[0])
    plan = copies.plan()
    assert plan.refresh("k") == 1
    assert plan.refresh("k") == 1  # not marked until the batch settles
    plan.settle([])
    now[0] = REFRESH_EVERY_S - 1
    assert copies.plan().refresh("k") == 0
    now[0] = REFRESH_EVERY_S
    assert copies.plan().refresh("k") == 1


def test_no_copies_keeps_nothing_and_refreshes_every_time() -> None:
    copies = StateCopies(max_logs=0)
    settled(copies, record(1), record(1))
    args, _ = settled(copies, record(2), record(1) + record(2))
    assert args[2] == b""
    plan = copies.plan()
    plan.refresh("k")
    plan.settle([])
    assert copies.plan().refresh("k") == 1


def test_the_least_recently_used_copy_goes_first() -> None:
    copies = StateCopies(max_logs=2)
    for key in ("a", "b", "a", "c"):
        plan = copies.plan()
        plan.log_args(CUSTOMER_LOG, key, record(1))
        plan.settle([record(1)])
    assert list(copies._logs) == ["a", "c"]


def test_a_failed_round_trip_forgets_everything() -> None:
    copies = StateCopies()
    settled(copies, record(1), record(1))
    copies.drop()
    args, _ = settled(copies, record(2), record(1) + record(2))
    assert args[2] == b""
