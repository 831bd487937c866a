"""Waiting for the stream processor to apply what was published (seeding, rebuilding)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tqdm import tqdm

from services.common.bus.kafka_bus import group_lags
from services.stream.concerns import CONCERNS, Concern


def stream_lag(bootstrap: str, concerns: Sequence[Concern] = CONCERNS) -> int:
    """Events the stream processor's consumer groups have not applied yet."""
    return sum(group_lags(bootstrap, {c.group: c.topics for c in concerns}).values())


def wait_for_stream(bootstrap: str, timeout_s: float, concerns: Sequence[Concern] = CONCERNS,
                    poll_s: float = 1.0) -> bool:
    start_lag = stream_lag(bootstrap, concerns)
    deadline = time.monotonic() + timeout_s
    with tqdm(total=start_lag, desc="stream catching up", unit="ev", unit_scale=True) as bar:
        lag = start_lag
        while lag > 0 and time.monotonic() < deadline:
            time.sleep(poll_s)
            lag = stream_lag(bootstrap, concerns)
            bar.n = max(0, start_lag - lag)
            bar.refresh()
    return lag == 0
