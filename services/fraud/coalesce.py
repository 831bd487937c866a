"""Concurrent requests scored together: one scoring thread takes whatever queued meanwhile.

    queue = CoalescingScorer(lambda batch: scorer.score(batch, "http"), max_batch=64)
    scored = await asyncio.wrap_future(queue.submit(txn))

A request never waits for others to arrive: the thread takes the first request queued and every
one that queued while the previous batch was being scored, up to `max_batch`. At low load that
is a batch of one, as before; under load the requests that would have queued for the
interpreter lock anyway share one Redis round trip, one array computation and one model call,
which is what the stream scorer gets from its micro-batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)
In = TypeVar("In")
Out = TypeVar("Out")
_STOP = object()


class CoalescingScorer(Generic[In, Out]):
    def __init__(self, score: Callable[[Sequence[In]], Sequence[Out]], max_batch: int,
                 on_batch: Callable[[int], None] = lambda n: None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._score = score
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fraud-scoring", daemon=True)
        self._thread.start()

    def submit(self, item: In) -> Future[Out]:
        future: Future[Out] = Future()
        self._queue.put((item, future))
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        """Scores what is queued, then stops the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._answer(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _answer(self, batch: list[tuple[In, Future[Out]]]) -> None:
        self._on_batch(len(batch))
        try:
            results = self._score([item for item, _ in batch])
        except BaseException as exc:  # every request of the batch gets the error, none hangs
            logger.exception("scoring a batch failed")
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
