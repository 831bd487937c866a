"""The live diagram's numbers: every service scraped on demand, each against its last window."""

from __future__ import annotations

import asyncio

from services.console.diagram import BOXES, BoxState, board
from services.console.stack import Stack
from services.console.vitals import Snapshot, Vitals, vitals


class Board:
    """Keeps each service's previous scrape, so a read gives rates over the time since then.
    A scrape sooner than `min_window_s` after the kept one is measured against the older one
    instead: two browsers polling at once do not shrink the window to nothing."""

    def __init__(self, stack: Stack, min_window_s: float) -> None:
        self.stack = stack
        self.min_window_s = min_window_s
        self._before: dict[str, Snapshot] = {}
        self._latest: dict[str, Snapshot] = {}

    async def read(self) -> list[BoxState]:
        names = [b.name for b in BOXES if not b.store and b.name in self.stack.upstreams]
        routes = {b.name: b.route for b in BOXES}
        probes, scrapes = await asyncio.gather(
            self.stack.probe_all(),
            asyncio.gather(*(self.stack.snapshot(n, routes[n]) for n in names)))
        found: dict[str, Vitals] = {}
        for name, now in zip(names, scrapes, strict=True):
            if now is not None:
                found[name] = self._advance(name, now)
        return board(probes, found)

    def _advance(self, name: str, now: Snapshot) -> Vitals:
        latest = self._latest.get(name)
        if latest is not None and now.at_s - latest.at_s >= self.min_window_s:
            self._before[name] = latest
        elif latest is None:
            self._before.pop(name, None)
        self._latest[name] = now
        return vitals(self._before.get(name), now)
