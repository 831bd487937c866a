"""Waiting for the stream to apply what was published (seeding, rebuilding)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from tqdm import tqdm

from services.common.bus.kafka_bus import group_lags
from services.common.bus.topics import FRAUD_SCORER_GROUP, TRANSACTIONS
from services.common.kafka_access import KafkaTarget
from services.stream.concerns import DEFAULT_CONCERNS, Concern

Groups = Mapping[str, Sequence[str]]  # consumer group -> the topics it consumes


def concern_groups(concerns: Sequence[Concern]) -> dict[str, Sequence[str]]:
    return {c.group: c.topics for c in concerns}


def stack_groups() -> dict[str, Sequence[str]]:
    """What applies a seeded event to the online state on a running stack: the stream
    processor's default concerns, and the fraud stream scorer, which records the transactions
    (and hands those too old to decide to the processor's `unrecorded-transactions`, so the
    sum of the lags is 0 only once both have applied them)."""
    return concern_groups(DEFAULT_CONCERNS) | {FRAUD_SCORER_GROUP: (TRANSACTIONS,)}


def stream_lag(kafka: KafkaTarget, groups: Groups) -> int:
    """Events these consumer groups have not applied yet."""
    return sum(group_lags(kafka, groups).values())


def wait_for_stream(kafka: KafkaTarget, timeout_s: float, groups: Groups,
                    poll_s: float = 1.0) -> bool:
    start_lag = stream_lag(kafka, groups)
    deadline = time.monotonic() + timeout_s
    with tqdm(total=start_lag, desc="stream catching up", unit="ev", unit_scale=True) as bar:
        lag = start_lag
        while lag > 0 and time.monotonic() < deadline:
            time.sleep(poll_s)
            lag = stream_lag(kafka, groups)
            bar.n = max(0, start_lag - lag)
            bar.refresh()
    return lag == 0
