"""Publishing off the request path: a bounded queue drained by one thread in batches.

    log = BackgroundPublisher(publisher, capacity=10_000, on_outcome=count)
    log.submit(message)       # microseconds; False (and "dropped") when the queue is full

For records a request does not wait on (decisions, impressions): the request answers at once,
the thread waits for the broker's acknowledgements. What is still queued at close() is sent
before the thread stops, within the publisher's delivery timeout.

`linger_s`: after the first message of a batch, wait this long for more. Every batch is one
produce request, and the broker's CPU goes by requests more than by messages: at a few hundred
requests a second without it, batches held one or two messages. Only the first message wakes the
thread (and a full batch, and close()): woken for every message, it cost each request a futex
call and a switch of the GIL (py-spy found it on the cached recommendation's path).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from services.common.bus.ports import Delivery, OutboundMessage, Publisher

logger = logging.getLogger(__name__)
Outcome = Callable[[str, int], None]  # ("stored" | "failed" | "dropped", how many)


class BackgroundPublisher:
    def __init__(self, publisher: Publisher, capacity: int = 10_000, max_batch: int = 500,
                 on_outcome: Outcome = lambda outcome, n: None, retry_for_s: float = 30.0,
                 backoff_max_s: float = 2.0, linger_s: float = 0.0) -> None:
        self._publisher = publisher
        self._linger_s = linger_s
        self._retry_for_s = retry_for_s
        self._backoff_max_s = backoff_max_s
        self._queue: queue.Queue[OutboundMessage | None] = queue.Queue(maxsize=capacity)
        self._max_batch = max_batch
        self._on_outcome = on_outcome
        self._ready = threading.Event()   # a full batch is queued, or close(): stop lingering
        self._thread = threading.Thread(target=self._drain, name="background-publisher",
                                        daemon=True)
        self._thread.start()

    def submit(self, message: OutboundMessage) -> bool:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._on_outcome("dropped", 1)
            return False
        if self._linger_s and self._queue.qsize() >= self._max_batch:
            self._ready.set()
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, stop the thread, close the publisher."""
        self._queue.put(None)
        self._ready.set()
        self._thread.join(timeout_s)
        self._publisher.close()

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            batch: list[OutboundMessage] = []
            item = self._queue.get()          # the first message of a batch wakes the thread
            if item is not None and self._linger_s and self._queue.qsize() < self._max_batch:
                # The rest gather in the queue meanwhile, none of them waking the thread.
                self._ready.wait(self._linger_s)
                self._ready.clear()
            while item is not None:
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if batch:
                self._send(batch)

    def _send(self, batch: list[OutboundMessage]) -> None:
        """Publish; what the broker did not take is sent again with backoff (a broker still
        connecting at start-up, a short outage) until retry_for_s, then counted as failed."""
        deadline = time.monotonic() + self._retry_for_s
        backoff_s = 0.05
        while batch:
            try:
                deliveries = self._publisher.publish(batch)
            except Exception as exc:  # the thread must outlive any one failure
                logger.warning("background publish raised", extra={"error": repr(exc)})
                deliveries = [Delivery(m, error=repr(exc)) for m in batch]
            stored = sum(1 for d in deliveries if d.ok)
            if stored:
                self._on_outcome("stored", stored)
            batch = [d.message for d in deliveries if not d.ok]
            if batch and time.monotonic() + backoff_s > deadline:
                logger.warning("background publish failed", extra={
                    "failed": len(batch), "error": next(d.error for d in deliveries if not d.ok)})
                self._on_outcome("failed", len(batch))
                return
            if batch:
                time.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
