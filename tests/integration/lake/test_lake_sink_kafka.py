"""The lake sink against the real broker and real Parquet files: every topic lands once, poison
goes to its dead-letter topic, offsets are committed after the files, redelivery adds nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.common.bus import topics
from services.common.bus.clients import kafka_record_source
from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import MalformedEvent
from services.common.bus.kafka_bus import (
    ensure_topics,
    group_lags,
    records_to_end,
    start_group_at_end,
)
from services.common.bus.ports import OutboundMessage, Record
from services.common.bus.topics import TopicSpec
from services.common.lake.files import live_files
from services.common.probe import process_ready
from services.lake.app import build_sink_loop
from services.lake.events import LAKE_TOPICS, lake_event
from services.lake.loop import SinkLoop
from services.lake.settings import LakeSettings
from services.lake.sink import LakeSink
from tests import lake_events as ev
from tests.harness import REPO_ROOT, ServerProcess, free_port
from tests.support.lake import metrics_for, publish, settings_for, wait_for

pytestmark = pytest.mark.integration








def lake_rows(root: Path, topic: str, run: str) -> list[dict[str, Any]]:
    """This run's rows of `topic` (the broker's topics are shared by every test)."""
    files = live_files(root, topic)
    if not files:
        return []
    rows: list[dict[str, Any]] = pa.concat_tables(
        [pq.read_table(f).replace_schema_metadata(None) for f in files]).to_pylist()
    return [r for r in rows if str(r["event_id"]).startswith(run)]


def holds_run(path: Path, run: str) -> bool:
    return any(str(r).startswith(run) for r in pq.read_table(path)["event_id"].to_pylist())




@pytest.fixture
def run() -> str:
    return f"r{uuid.uuid4().hex[:8]}"


def every_topic(run: str) -> list[OutboundMessage]:
    start = ev.T0
    return [
        *(ev.watch(run, i, start + timedelta(minutes=20 * i)) for i in range(12)),
        *(ev.transaction(run, i) for i in range(4)),
        *(ev.decision(run, i, "approve", []) for i in range(4)),
        *(ev.label(run, i, is_fraud=False) for i in range(4)),
        *(ev.title(run, i, ["drama"]) for i in range(3)),
        ev.exposure(run, f"{run}e", f"{run}u1", "a", start, 0),
        ev.impression(run, f"{run}u1", f"{run}q1", f"{run}e", "a", start, 0),
        ev.click(run, f"{run}u1", f"{run}q1", start, 0),
    ]


def start(loop: SinkLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def test_every_topic_lands_once_by_hour_and_poison_goes_to_the_topics_dead_letter_topic(
        kafka_server: ServerProcess, tmp_path: Path, run: str) -> None:
    settings = settings_for(kafka_server, tmp_path / "lake", lake_flush_interval_s=0.5)
    messages = every_topic(run)
    poison = [OutboundMessage(topics.WATCH_EVENTS, f"{run}-bad", b"{not json"),
              ev.message(topics.TRANSACTIONS, f"{run}-wrong", "watch",
                         {"user_id": "u", "content_id": "t", "watch_seconds": 1,
                          "completed": True}, ev.T0, f"{run}-wrong-type")]
    loop = build_sink_loop(settings, metrics_for(settings))  # creates the topics
    publish(kafka_server, messages + poison)
    thread = start(loop)
    expected = {topic: sum(1 for m in messages if m.topic == topic) for topic in LAKE_TOPICS}
    try:
        wait_for(lambda: all(len(lake_rows(settings.lake_root, t, run)) == n
                             for t, n in expected.items()), 60, "every event in the lake")
        wait_for(lambda: group_lags(kafka_server.address,
                                    {settings.lake_group: LAKE_TOPICS})[settings.lake_group] == 0,
                 30, "every offset committed")
    finally:
        loop.stop()
        thread.join(30)

    watches = lake_rows(settings.lake_root, topics.WATCH_EVENTS, run)
    assert len({r["event_id"] for r in watches}) == len(watches) == 12
    # 12 watches 20 minutes apart from 09:00 UTC: hours 09 to 12, three in each
    hours = sorted({p.parent.name for p in live_files(settings.lake_root, topics.WATCH_EVENTS)
                    if holds_run(p, run)})
    assert hours == ["hour=09", "hour=10", "hour=11", "hour=12"]
    assert all(r["data"].startswith("{") for r in watches)

    dead = {r.key: r for topic in (topics.WATCH_EVENTS, topics.TRANSACTIONS)
            for r in records_to_end(kafka_server.address, topics.dlq_topic(topic))
            if r.key is not None and r.key.decode().startswith(run)}
    assert set(dead) == {f"{run}-bad".encode(), f"{run}-wrong".encode()}
    reason = dict(dead[f"{run}-wrong".encode()].headers)["dlq.reason"].decode()
    assert "does not belong on 'transactions'" in reason


def read_all(settings: LakeSettings, run: str, n: int) -> list[Record]:
    """A member of the sink's group polling until this run's `n` watches came in."""
    source = kafka_record_source(settings, settings.lake_group, [topics.WATCH_EVENTS], "it-crash")
    records: list[Record] = []
    try:
        deadline = time.monotonic() + 60
        while sum(1 for r in records if (r.key or b"").startswith(run.encode())) < n:
            assert time.monotonic() < deadline, "the watches never came"
            records += source.poll(0.5, 1000)
    finally:
        source.close()  # without a commit: the process "crashed" after its flush
    return records


def test_a_flush_redone_after_a_crash_before_the_commit_writes_each_row_once(
        kafka_server: ServerProcess, tmp_path: Path, run: str) -> None:
    settings = settings_for(kafka_server, tmp_path / "lake", lake_flush_rows=5,
                            lake_flush_interval_s=0.5)
    ensure_topics(kafka_server.address, [TopicSpec(t, 3) for t in LAKE_TOPICS])
    publish(kafka_server, [ev.watch(run, i, ev.T0 + timedelta(minutes=20 * i))
                           for i in range(24)])

    first = LakeSink(settings.lake_root, flush_rows=10**6, flush_interval_s=3600)
    for record in read_all(settings, run, 24):
        try:
            first.add(record, lake_event(record))
        except (MalformedEvent, PoisonEvent):
            continue  # other tests' poison on the shared topic
    written = [f for f in first.flush().files if holds_run(f.path, run)]
    assert len(written) > 1
    # The crash came mid-flush: the last file's rename never happened, nothing was committed.
    written[-1].path.unlink()
    missing = written[-1].rows

    loop = build_sink_loop(settings, metrics_for(settings))
    thread = start(loop)  # the group's next member: reads all 24 again, in flushes of 5 rows
    try:
        wait_for(lambda: group_lags(kafka_server.address,
                                    {settings.lake_group: LAKE_TOPICS})[settings.lake_group] == 0,
                 60, "every offset committed")
    finally:
        loop.stop()
        thread.join(30)

    rows = lake_rows(settings.lake_root, topics.WATCH_EVENTS, run)
    assert sorted(r["event_id"] for r in rows) == sorted(f"{run}-watch-{i}" for i in range(24))
    assert missing > 0


def start_lake(kafka: ServerProcess, root: Path, group: str, workdir: Path) -> ServerProcess:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "lake.log"
    env = {**os.environ, "MLSD_LAKE_PORT": str(port), "MLSD_ENVIRONMENT": "test",
           "MLSD_LAKE_ROOT": str(root), "MLSD_LAKE_GROUP": group,
           "MLSD_LAKE_FLUSH_INTERVAL_S": "0.5", "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.lake"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   start_new_session=True)
    server = ServerProcess("lake", process, log_path, url)
    if process_ready(f"{url}/readyz", process, 30):
        return server
    exited = process.poll()
    server.stop()
    pytest.fail(f"lake exited with {exited}:\n{server.log_tail()}" if exited is not None
                else f"lake was not ready after 30 s:\n{server.log_tail()}")


def test_the_process_writes_the_lake_reports_rows_and_lag_and_stops_on_sigterm(
        kafka_server: ServerProcess, tmp_path: Path, run: str) -> None:
    root, group = tmp_path / "lake", f"lake-it-{run}"
    # the session broker holds what other tests published (a seeded dev world among them): a new
    # group starting at the end reads this test's events, not the whole backlog first
    ensure_topics(kafka_server.address, [TopicSpec(t, 3) for t in LAKE_TOPICS])
    start_group_at_end(kafka_server.address, group, LAKE_TOPICS)
    server = start_lake(kafka_server, root, group, tmp_path)
    try:
        publish(kafka_server, [ev.watch(run, i) for i in range(30)])
        wait_for(lambda: len(lake_rows(root, topics.WATCH_EVENTS, run)) == 30, 60,
                 "the watches in the lake")
        metrics = httpx.get(f"{server.address}/metrics").text
        assert 'lake_rows_written_total{topic="watch-events"}' in metrics
        assert f'lake_consumer_lag_records{{group="{group}"' in metrics
        assert httpx.get(f"{server.address}/healthz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down: the exit status is -SIGTERM either way
        server.process.wait(timeout=40)
        assert "lake sink stopped" in server.log_path.read_text()
    finally:
        server.stop()
    assert group_lags(kafka_server.address, {group: LAKE_TOPICS})[group] == 0
