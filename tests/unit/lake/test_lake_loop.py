"""The sink's loop with the in-memory broker and real Parquet files: commits follow the files,
poison is dead-lettered with the platform's headers, a revoke flushes and commits first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from services.common.bus import topics
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from services.common.bus.ports import OutboundMessage, PublishFailed, TopicPartitionKey
from services.common.lake.files import live_files
from services.common.telemetry import Metrics
from services.lake.events import LAKE_TOPICS
from services.lake.loop import LakeMetrics, LoopConfig, SinkLoop
from services.lake.sink import LakeSink
from tests import lake_events as ev

GROUP = "lake-unit"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CheckingSource(InMemoryRecordSource):
    """Remembers, at each commit, which lake files existed: a commit must follow its files."""

    def __init__(self, broker: InMemoryBroker, root: Path) -> None:
        super().__init__(broker, GROUP, LAKE_TOPICS)
        self.root = root
        self.files_at_commit: list[int] = []
        self.revoke: object = None

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        self.files_at_commit.append(len(live_files(self.root, topics.WATCH_EVENTS)))
        super().commit(offsets)

    def on_revoke(self, handler: object) -> None:
        self.revoke = handler


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker(partitions=1)


def loop_for(broker: InMemoryBroker, root: Path, clock: Clock,
             flush_rows: int = 100) -> tuple[SinkLoop, CheckingSource]:
    source = CheckingSource(broker, root)
    metrics = Metrics("lake")
    loop = SinkLoop(source=source, sink=LakeSink(root, flush_rows, 5.0, clock=clock),
                    dlq=InMemoryPublisher(broker), metrics=LakeMetrics(metrics, GROUP, LAKE_TOPICS),
                    config=LoopConfig(group=GROUP), clock=clock)
    return loop, source


def publish(broker: InMemoryBroker, *messages: OutboundMessage) -> None:
    for message in messages:
        broker.append(message)


def test_offsets_are_committed_only_after_the_flush_that_holds_them(
        broker: InMemoryBroker, tmp_path: Path) -> None:
    clock = Clock()
    loop, source = loop_for(broker, tmp_path, clock)
    publish(broker, *(ev.watch("r", i) for i in range(4)))

    loop.run_once()  # buffered; the flush is not due
    assert source.files_at_commit == []
    assert broker.committed == {}
    clock.now = 5.0
    loop.run_once()

    assert source.files_at_commit == [1]  # the file was there when the commit went out
    assert broker.committed == {(GROUP, (topics.WATCH_EVENTS, 0)): 4}


def test_poison_goes_to_the_topics_dlq_with_its_reason_and_is_committed(
        broker: InMemoryBroker, tmp_path: Path) -> None:
    clock = Clock()
    loop, _ = loop_for(broker, tmp_path, clock, flush_rows=1)
    publish(broker, OutboundMessage(topics.WATCH_EVENTS, "k", b"{oops"), ev.watch("r", 1))

    loop.run_once()

    dead = broker.records(topics.dlq_topic(topics.WATCH_EVENTS))
    assert [r.value for r in dead] == [b"{oops"]
    headers = dict(dead[0].headers)
    assert headers["dlq.group"] == GROUP.encode()
    assert b"invalid event envelope" in headers["dlq.reason"]
    assert broker.committed[(GROUP, (topics.WATCH_EVENTS, 0))] == 2


def test_a_revoke_flushes_and_commits_what_was_taken(broker: InMemoryBroker,
                                                   tmp_path: Path) -> None:
    loop, source = loop_for(broker, tmp_path, Clock())
    publish(broker, *(ev.watch("r", i) for i in range(3)))
    loop.run_once()
    assert broker.committed == {}

    source.revoke([(topics.WATCH_EVENTS, 0)])  # type: ignore[operator]

    assert broker.committed == {(GROUP, (topics.WATCH_EVENTS, 0)): 3}
    assert len(live_files(tmp_path, topics.WATCH_EVENTS)) == 1


def test_stopping_flushes_commits_and_closes(broker: InMemoryBroker, tmp_path: Path) -> None:
    loop, source = loop_for(broker, tmp_path, Clock())
    publish(broker, *(ev.watch("r", i) for i in range(3)))
    loop.run_once()
    loop.stop()

    loop.run()

    assert source.closed
    assert broker.committed == {(GROUP, (topics.WATCH_EVENTS, 0)): 3}


def test_a_dead_letter_that_cannot_be_stored_ends_the_loop_without_a_commit(
        broker: InMemoryBroker, tmp_path: Path) -> None:
    loop, source = loop_for(broker, tmp_path, Clock(), flush_rows=1)
    publish(broker, OutboundMessage(topics.WATCH_EVENTS, "k", b"{oops"), ev.watch("r", 1))
    broker.unavailable = True  # the DLQ publish fails

    with pytest.raises(PublishFailed):
        loop.run()

    assert broker.committed == {}  # the poison record is read again after a restart
    assert source.closed
