"""The live diagram's numbers: every service read on demand (or Prometheus's, when it runs)."""

from __future__ import annotations

import asyncio
import logging

from services.console.diagram import BOXES, Box, BoxState, board
from services.console.prometheus import PrometheusUnavailable, PrometheusVitals
from services.console.stack import Stack
from services.console.vitals import Snapshot, Vitals, vitals

logger = logging.getLogger(__name__)


class Board:
    """Keeps each service's previous scrape, so a read gives rates over the time since then.
    A scrape sooner than `min_window_s` after the kept one is measured against the older one
    instead: two browsers polling at once do not shrink the window to nothing."""

    def __init__(self, stack: Stack, min_window_s: float,
                 prometheus: PrometheusVitals | None = None) -> None:
        self.stack = stack
        self.min_window_s = min_window_s
        self.prometheus = prometheus
        self.source = "the services' /metrics"
        self._before: dict[str, Snapshot] = {}
        self._latest: dict[str, Snapshot] = {}

    async def read(self) -> list[BoxState]:
        boxes = [b for b in BOXES if not b.store and b.name in self.stack.upstreams]
        probes, found = await asyncio.gather(self.stack.probe_all(), self._from_prometheus(boxes))
        scraped = [b for b in boxes if b.name not in found]
        scrapes = await asyncio.gather(*(self.stack.snapshot(b.name, b.route) for b in scraped))
        for box, now in zip(scraped, scrapes, strict=True):
            if now is not None:
                found[box.name] = self._advance(box.name, now)
        return board(probes, found)

    async def _from_prometheus(self, boxes: list[Box]) -> dict[str, Vitals]:
        if self.prometheus is None:
            return {}
        try:
            found = await self.prometheus.read(boxes)
        except PrometheusUnavailable as error:
            logger.warning("prometheus unavailable: scraping instead", extra={"error": str(error)})
            self.source = "the services' /metrics (Prometheus did not answer)"
            return {}
        self.source = f"Prometheus ({self.prometheus.url}), one-minute windows"
        return found

    def _advance(self, name: str, now: Snapshot) -> Vitals:
        latest = self._latest.get(name)
        if latest is not None and now.at_s - latest.at_s >= self.min_window_s:
            self._before[name] = latest
        elif latest is None:
            self._before.pop(name, None)
        self._latest[name] = now
        return vitals(self._before.get(name), now)
