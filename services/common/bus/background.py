"""Publishing off the request path: a bounded queue drained by one thread in batches.

    log = BackgroundPublisher(publisher, capacity=10_000, on_outcome=count)
    log.submit(message)       # microseconds; False (and "dropped") when the queue is full

For records a request does not wait on (decisions, impressions): the request answers at once,
the thread waits for the broker's acknowledgements. What is still queued at close() is sent
before the thread stops, within the publisher's delivery timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from services.common.bus.ports import OutboundMessage, Publisher

logger = logging.getLogger(__name__)
Outcome = Callable[[str, int], None]  # ("stored" | "failed" | "dropped", how many)


class BackgroundPublisher:
    def __init__(self, publisher: Publisher, capacity: int = 10_000, max_batch: int = 500,
                 on_outcome: Outcome = lambda outcome, n: None) -> None:
        self._publisher = publisher
        self._queue: queue.Queue[OutboundMessage | None] = queue.Queue(maxsize=capacity)
        self._max_batch = max_batch
        self._on_outcome = on_outcome
        self._thread = threading.Thread(target=self._drain, name="background-publisher",
                                        daemon=True)
        self._thread.start()

    def submit(self, message: OutboundMessage) -> bool:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._on_outcome("dropped", 1)
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, stop the thread, close the publisher."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._publisher.close()

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            batch: list[OutboundMessage] = []
            item = self._queue.get()
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
        try:
            deliveries = self._publisher.publish(batch)
        except Exception:  # the thread must outlive any one failure
            logger.exception("background publish raised")
            self._on_outcome("failed", len(batch))
            return
        failed = sum(1 for d in deliveries if not d.ok)
        if failed:
            logger.warning("background publish failed", extra={
                "failed": failed, "error": next(d.error for d in deliveries if not d.ok)})
            self._on_outcome("failed", failed)
        self._on_outcome("stored", len(deliveries) - failed)
