"""The two live demonstrations that take more than one call: a watch, and a fraud preset."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from services.console import presets
from services.console.stack import Stack

POLL_S = 0.05  # how often the next list is asked for while a watch travels


@dataclass(frozen=True)
class WatchOutcome:
    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool
    seconds: float   # from the event's 202 to the first list that differs (or to giving up)


def _ids(answer: dict[str, Any]) -> list[str]:
    return [item["content_id"] for item in answer["items"]]


async def watch_and_wait(stack: Stack, user: str, content_id: str, k: int,
                         wait_s: float) -> WatchOutcome:
    """Post the watch through ingest, then ask again until the list changes: event -> Kafka
    -> stream -> features (and the cached list dropped) -> a new answer."""
    before = await stack.recommendations(user, k)
    await stack.watch(user, content_id)
    posted = time.monotonic()
    while True:
        after = await stack.recommendations(user, k)
        elapsed = time.monotonic() - posted
        if after["watch_count"] > before["watch_count"] or _ids(after) != _ids(before):
            return WatchOutcome(before, after, True, elapsed)
        if elapsed > wait_s:
            return WatchOutcome(before, after, False, elapsed)
        await asyncio.sleep(POLL_S)


@dataclass(frozen=True)
class PresetStep:
    request: dict[str, Any]
    decision: dict[str, Any]


async def run_preset(stack: Stack, key: str) -> list[PresetStep]:
    """Every request of the preset in order; the last decision is the preset's."""
    steps = []
    for body in presets.build(key):
        steps.append(PresetStep(body, await stack.score(body)))
    return steps
