"""CoalescingScorer: requests that queue while a batch is scored go together; none waits for
others to arrive; an error reaches every request of its batch; close scores what is queued."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from services.fraud.coalesce import CoalescingScorer


class Gate:
    """A scorer that holds its first batch until released: the next requests queue meanwhile."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(5)
        return [x * 10 for x in batch]


def test_a_lone_request_is_scored_at_once_in_a_batch_of_one() -> None:
    gate = Gate()
    gate.release.set()
    scorer = CoalescingScorer(gate, max_batch=8)
    assert scorer.submit(1).result(timeout=5) == 10
    scorer.close()
    assert gate.batches == [[1]]


def test_requests_that_queue_while_a_batch_is_scored_go_together_up_to_max_batch() -> None:
    gate = Gate()
    sizes: list[int] = []
    scorer = CoalescingScorer(gate, max_batch=3, on_batch=sizes.append)
    first = scorer.submit(1)
    assert gate.entered.wait(5)
    waiting = [scorer.submit(n) for n in range(2, 7)]  # queue behind the held batch
    gate.release.set()
    assert first.result(timeout=5) == 10
    assert [f.result(timeout=5) for f in waiting] == [20, 30, 40, 50, 60]
    scorer.close()
    assert gate.batches == [[1], [2, 3, 4], [5, 6]]
    assert sizes == [1, 3, 2]


def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_is_scored() -> None:
    calls: list[list[int]] = []

    def flaky(batch: Sequence[int]) -> list[int]:
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("redis went away")
        return list(batch)

    scorer = CoalescingScorer(flaky, max_batch=4)
    with pytest.raises(RuntimeError, match="redis went away"):
        scorer.submit(1).result(timeout=5)
    assert scorer.submit(2).result(timeout=5) == 2
    scorer.close()


def test_close_scores_what_is_queued_then_stops() -> None:
    gate = Gate()
    scorer = CoalescingScorer(gate, max_batch=8)
    first = scorer.submit(1)
    assert gate.entered.wait(5)
    queued = scorer.submit(2)
    closing = threading.Thread(target=scorer.close)
    closing.start()
    gate.release.set()
    closing.join(5)
    assert (first.result(timeout=1), queued.result(timeout=1)) == (10, 20)


def test_max_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        CoalescingScorer(list, max_batch=0)
