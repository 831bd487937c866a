"""`make rebuild-online`: the online state again, after Redis was lost, from PostgreSQL and Kafka.

`python -m services.seeder --rebuild-online` runs it on the local stack; the steps:

    1 refuse if Redis still holds the stream's state (a replay on top would count twice)
    2 stop the stream processor, and forget its consumer groups' offsets
    3 profiles and experiment definitions from PostgreSQL into Redis; every title of the
      catalog of record announced again through the outbox, at its own load's time (the topic
      may no longer hold a title loaded before its retention; the stream keeps the newer)
    4 start the stream processor: it replays every topic from the earliest record it keeps,
      through the same handlers that built the state (the seeder's path: events -> stream);
      `transactions` through the `transaction-features` concern, which the stack runs only for
      this (live, the fraud scorer records what it decides: docs/adr/0007)
    5 wait until every group has caught up (the seeder's wait_for_stream)

What comes back: whatever the topics still hold (Kafka keeps 7 days: infra/kafka), and
everything in PostgreSQL. docs/data.md lists what lives where and what a rebuild restores.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from services.catalog_etl.job import title_message
from services.catalog_etl.titles import GoodRow
from services.common.bus.dedupe import dedupe_prefix
from services.common.bus.kafka_bus import forget_groups
from services.common.bus.ports import Publisher
from services.common.records.outbox import OutboxRelay
from services.common.redis_client import RedisClient
from services.common.settings import PlatformSettings
from services.designs.experiments.records import PostgresExperimentHistory
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.recs import keys
from services.designs.recs.records import CatalogRecords, ProfileRecords
from services.designs.recs.redis_store import write_profiles
from services.seeder.catchup import concern_groups, wait_for_stream
from services.stream.concerns import CONCERNS, Concern

REBUILD_SOURCE = "rebuild-online"


class OnlineStateStillThere(RuntimeError):
    """Redis still holds what the stream wrote: replaying the topics on top would apply each
    event twice. Flush it (or lose it) first."""


@dataclass(frozen=True)
class Rebuilt:
    profiles: int
    experiments: int
    titles: int
    caught_up: bool


def announce_catalog(pool: ConnectionPool, publisher: Publisher) -> int:
    """Each recorded title as a title event at its load's time, through the outbox."""
    catalog = CatalogRecords(pool)
    run_id = f"rebuild-{uuid.uuid4().hex[:12]}"
    messages = [title_message(GoodRow(line, title), run_id, REBUILD_SOURCE, at)
                for line, (title, at) in enumerate(catalog.versions(), start=1)]
    catalog.announce(messages)
    OutboxRelay(pool, publisher).drain()
    return len(messages)


def stream_state_left(client: RedisClient, namespace: str,
                      concerns: Sequence[Concern]) -> bool:
    """Whether any event the stream handled is still remembered (its dedupe keys)."""
    return any(next(client.scan_iter(match=f"{dedupe_prefix(namespace, c.group)}*",
                                     count=1_000), None) is not None for c in concerns)


def rebuild_online(settings: PlatformSettings, pool: ConnectionPool, client: RedisClient,
                   publisher: Publisher, *,
                   stop_stream: Callable[[], None], start_stream: Callable[[], None],
                   concerns: Sequence[Concern] = CONCERNS, dataset: str | None = None,
                   timeout_s: float = 600.0, poll_s: float = 1.0) -> Rebuilt:
    namespace = settings.feature_namespace
    if stream_state_left(client, namespace, concerns):
        raise OnlineStateStillThere(
            "Redis still holds the stream's state; rebuild-online is for a Redis that was lost "
            "(FLUSHALL it first to rebuild from scratch)")
    stop_stream()
    forget_groups(settings.kafka_access(), [c.group for c in concerns])
    profiles = ProfileRecords(pool).all()
    write_profiles(client, profiles, namespace)
    definitions = PostgresExperimentHistory(pool).definitions()
    RedisDefinitionStore(client, namespace).add_missing(definitions)
    if dataset is not None:  # the seeder's marker: which dataset the recs state belongs to
        client.set(keys.dataset_key(namespace), dataset)
    titles = announce_catalog(pool, publisher)
    start_stream()
    caught_up = wait_for_stream(settings.kafka_access(), timeout_s,
                                concern_groups(concerns), poll_s)
    return Rebuilt(len(profiles), len(definitions), titles, caught_up)
