"""Events straight into a lake directory through the sink's own loop, without a broker process.

For jobs that build a lake from events they already hold (a test's, the drift scenario's
history): the records go through an in-memory broker into the same SinkLoop and LakeSink the
`lake-sink` consumer group runs, so the files, their layout, validation and dead-lettering are
the sink's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from services.common.bus.memory import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.telemetry import Metrics
from services.lake.events import LAKE_TOPICS
from services.lake.loop import LakeMetrics, LoopConfig, SinkLoop
from services.lake.sink import LakeSink

GROUP = "lake-replay"


def write_to_lake(root: Path, messages: Iterable[OutboundMessage]) -> int:
    """Every message's event in the lake at `root`; returns how many records went in."""
    broker = InMemoryBroker(partitions=1)
    count = 0
    for message in messages:
        broker.append(message)
        count += 1
    source = InMemoryRecordSource(broker, GROUP, LAKE_TOPICS)
    # One flush at the end: a file per topic and hour, as the compacted lake would hold.
    loop = SinkLoop(source=source, sink=LakeSink(root, 10_000_000, 86_400.0),
                    dlq=InMemoryPublisher(broker),
                    metrics=LakeMetrics(Metrics("lake"), GROUP, LAKE_TOPICS),
                    config=LoopConfig(group=GROUP, max_batch=50_000))
    while any(source.lag().values()):
        loop.run_once()
    loop.flush_and_commit()
    return count
