"""The background publisher: requests never wait; a broker still connecting loses nothing."""

from __future__ import annotations

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
