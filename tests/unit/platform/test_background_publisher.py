"""The background publisher: requests never wait; a broker still connecting loses nothing."""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.common.bus.background import BackgroundPublisher
from services.common.bus.ports import Delivery, OutboundMessage


class Flaky:
    """Refuses every message for its first `failures` calls, then stores them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: list[OutboundMessage] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        if self.failures > 0:
            self.failures -= 1
            return [Delivery(m, error="BrokerNotConnected") for m in messages]
        self.stored += messages
        return [Delivery(m, 0, len(self.stored)) for m in messages]

    def close(self) -> None:
        pass


def outcomes() -> tuple[dict[str, int], object]:
    counts: dict[str, int] = {}

    def count(outcome: str, n: int) -> None:
        counts[outcome] = counts.get(outcome, 0) + n

    return counts, count


def test_messages_refused_while_the_broker_connects_are_sent_again() -> None:
    broker, (counts, count) = Flaky(failures=3), outcomes()
    log = BackgroundPublisher(broker, on_outcome=count, retry_for_s=5)  # type: ignore[arg-type]
    for n in range(10):
        assert log.submit(OutboundMessage("t", "k", str(n).encode()))
    log.close()
    assert [m.value for m in broker.stored] == [str(n).encode() for n in range(10)]
    assert counts == {"stored": 10}


def test_messages_still_refused_after_the_retry_window_are_counted_as_failed() -> None:
    broker, (counts, count) = Flaky(failures=10**6), outcomes()
    log = BackgroundPublisher(broker, on_outcome=count, retry_for_s=0.2)  # type: ignore[arg-type]
    log.submit(OutboundMessage("t", "k", b"x"))
    log.close()
    assert counts == {"failed": 1}


class Batches(Flaky):
    """Stores everything, remembering how many messages each publish call carried."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.sizes: list[int] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        self.sizes.append(len(messages))
        return super().publish(messages)


def test_with_a_linger_messages_arriving_apart_share_one_produce_request() -> None:
    def sizes(linger_s: float) -> list[int]:
        broker = Batches()
        log = BackgroundPublisher(broker, linger_s=linger_s)  # type: ignore[arg-type]
        for n in range(5):
            log.submit(OutboundMessage("t", "k", str(n).encode()))
            time.sleep(0.02)
        log.close()
        assert [m.value for m in broker.stored] == [str(n).encode() for n in range(5)]
        return broker.sizes

    assert sizes(linger_s=0.0) == [1, 1, 1, 1, 1]   # each sent as it came
    assert sizes(linger_s=1.0) == [5]


def test_a_full_batch_goes_without_waiting_out_the_linger() -> None:
    broker = Batches()
    log = BackgroundPublisher(broker, max_batch=3, linger_s=30.0)  # type: ignore[arg-type]
    for n in range(3):
        log.submit(OutboundMessage("t", "k", str(n).encode()))
    deadline = time.monotonic() + 5
    while not broker.sizes:
        assert time.monotonic() < deadline, "a full batch waited for the linger"
        time.sleep(0.01)
    assert broker.sizes == [3]
    log.close()


def test_close_sends_a_lingering_batch_at_once() -> None:
    broker = Batches()
    log = BackgroundPublisher(broker, linger_s=30.0)  # type: ignore[arg-type]
    log.submit(OutboundMessage("t", "k", b"0"))
    time.sleep(0.05)                       # the thread has taken it and lingers
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 5, "close() waited out the linger"
    assert broker.sizes == [1]
