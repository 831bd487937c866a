"""`python -m services.seeder`: publish the worlds' history to Kafka, then wait for the stream.

Profiles and titles go to the system of record (PostgreSQL) first: profiles from there to Redis,
titles through the catalog ETL and its outbox. `make rebuild-online` (rebuild.py) restores the
online state from the same two sources after Redis is lost.

The viewing history is MLSD_DATASET's: the synthetic viewing world or MovieLens 100k (the fraud
history is always the synthetic transaction world's).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TypeVar

import pandas as pd
from psycopg_pool import ConnectionPool
from tqdm import tqdm

from services.catalog_etl.job import load
from services.common.bus.clients import kafka_publisher
from services.common.bus.dedupe import dedupe_prefix
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import OutboundMessage, Publisher, publish_or_raise
from services.common.bus.topics import platform_topics
from services.common.loopback import free_port
from services.common.records.outbox import OutboxRelay
from services.common.records.pool import records_pool
from services.common.records.settings import PostgresSettings
from services.common.redis_client import background_redis
from services.designs.model_features import FRAUD_REACH_DAYS, LAKE_DAYS_FOR_A_RETRAIN
from services.designs.recs import keys
from services.designs.recs.records import CatalogRecords, ProfileRecords
from services.designs.recs.redis_store import write_profiles
from services.seeder.catchup import stack_groups, wait_for_stream
from services.seeder.history import (
    SOURCE,
    ViewingHistory,
    catalog_rows,
    movielens_history,
    synthetic_history,
    transaction_history,
    watch_messages,
)
from services.seeder.rebuild import OnlineStateStillThere, rebuild_online
from services.stream.concerns import CONCERNS, Concern
from services.trainer.pipeline import TrainerSettings
from services.trainer.worlds.movielens import MovieLensWorld

CHUNK = 5_000
RECS_CONCERNS = ("watch-features", "catalog-titles")  # the stream's writers of that state


T = TypeVar("T")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def publish(publisher: Publisher, messages: Iterable[OutboundMessage], total: int,
            what: str) -> None:
    with tqdm(total=total, desc=f"publish {what}", unit="ev", unit_scale=True) as bar:
        for chunk in chunks(messages):
            publish_or_raise(publisher, chunk)
            bar.update(len(chunk))


def read_history(settings: TrainerSettings) -> ViewingHistory:
    """The viewing world `make models` saved for MLSD_DATASET (synthetic or movielens)."""
    worlds = settings.world_dir
    if settings.dataset == "movielens":
        directory = worlds / "movielens"
        frames = [pd.read_parquet(directory / f"{name}.parquet")
                  for name in ("users", "titles", "interactions")]
        return movielens_history(MovieLensWorld(*frames))
    directory = worlds / "viewing"
    return synthetic_history(*(pd.read_parquet(directory / f"{name}.parquet")
                               for name in ("users", "titles", "interactions")))


def reset_if_other_dataset(settings: TrainerSettings) -> None:
    """The recommendation state (histories, vectors, trending, profiles, the catalog) belongs to
    one dataset: seeding another one clears it first, or the old titles would stay in the
    recommender's catalog beside the new ones. The fraud state and the experiments stay."""
    client = background_redis(settings)
    namespace = settings.feature_namespace
    try:
        marker = keys.dataset_key(namespace)
        built_from = client.get(marker)
        if built_from == settings.dataset.encode():
            return
        removed = 0
        # and which watch and title events the stream has handled, or the replay's events,
        # whose ids are the same as last time's, would be skipped as duplicates
        handled = [f"{dedupe_prefix(namespace, c.group)}*" for c in CONCERNS
                   if c.name in RECS_CONCERNS]
        for pattern in keys.recs_state_patterns(namespace) + handled:
            # one key a command: on Redis Cluster the keys of a pattern live on every node
            for batch in chunks(client.scan_iter(match=pattern, count=1_000), 1_000):
                pipe = client.pipeline(transaction=False)
                for key in batch:
                    pipe.unlink(key)
                removed += sum(pipe.execute())
        client.set(marker, settings.dataset)
    finally:
        client.close()
    old = built_from.decode() if isinstance(built_from, bytes) else "an unmarked"
    print(f"recommendation state: {old} dataset's {removed:,} keys cleared for "
          f"{settings.dataset}")


def load_profiles(settings: TrainerSettings, pool: ConnectionPool,
                  profiles: list[tuple[str, str, int]]) -> None:
    """Batch data, not events: the account system's profiles (kind, maturity limit) into the
    record, then from there into Redis (the recommender reads a user's limit in its one round
    trip; make rebuild-online copies them again from the record)."""
    ProfileRecords(pool).save(profiles)
    client = background_redis(settings)
    try:
        write_profiles(client, ProfileRecords(pool).all(), settings.feature_namespace)
    finally:
        client.close()
    print(f"profiles: {len(profiles):,} with their maturity limits, recorded and cached")


def load_titles(settings: TrainerSettings, pool: ConnectionPool, publisher: Publisher,
                titles: pd.DataFrame, shift: timedelta) -> None:
    """The world's titles through the catalog ETL, as `make catalog FILE=...` loads any catalog:
    a Parquet file of its rows, validated, recorded with their events in the outbox and relayed
    to the catalog topic, from which the stream writes names, genres and release dates (moved
    by the replay's shift) to Redis."""
    path = settings.world_dir / f"catalog-{settings.dataset}.parquet"
    catalog_rows(titles, shift).to_parquet(path, index=False)
    report = load(path, None, source=SOURCE, progress=True, records=CatalogRecords(pool))
    OutboxRelay(pool, publisher).drain()
    if not report.ok:
        raise SystemExit(f"{len(report.bad)} of the world's titles failed the catalog's checks, "
                         f"e.g. line {report.bad[0].line}: {report.bad[0].problem}")
    print(f"titles: {report.published:,} through the catalog ETL ({path}), release dates "
          f"moved by {shift.days:,} days")


def say_if_short(world: pd.DataFrame, days: float) -> None:
    """A world saved before the dev world grew (58 days) replays all it has, short of what
    `make retrain-fraud` needs: say so, and how to get the longer one."""
    held = (world["tx_datetime"].max() - world["tx_datetime"].min()) / pd.Timedelta(days=1)
    if held < min(days, LAKE_DAYS_FOR_A_RETRAIN) - 1:
        print(f"the transaction world holds {held:.0f} days, fewer than the "
              f"{LAKE_DAYS_FOR_A_RETRAIN} make retrain-fraud needs in the lake: `make models` "
              "generates the dev world anew (make retrain-fraud refuses until then)")


def start_replayer(concerns: Sequence[Concern]) -> subprocess.Popen[bytes]:
    """A stream processor of its own for the concerns the stack does not run (the rebuild's
    `transaction-features`), beside the supervised one; its log in .state/logs."""
    log_dir = Path(".state/logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "rebuild-replayer.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.stream"], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "MLSD_STREAM_CONCERNS": ",".join(c.name for c in concerns),
                 "MLSD_STREAM_PORT": str(free_port()), "MLSD_SERVICE_NAME": "stream_rebuild",
                 # a user per service (the cluster topology): the stream's, for its groups
                 **({"MLSD_KAFKA_USERNAME": "stream"} if os.environ.get("MLSD_KAFKA_USERS_DIR")
                    else {})})


def rebuild(timeout_s: float) -> int:
    """--rebuild-online on the local stack: its supervisor stops and starts the stream, and a
    processor of its own replays what the stack's does not run (`transactions`)."""
    from services.devstack.__main__ import supervisor, supervisord_running  # noqa: PLC0415

    if not supervisord_running():
        print("the local stack is not running: `make run` first", file=sys.stderr)
        return 2
    settings = TrainerSettings(service_name="seeder")  # its own Kafka user on the cluster
    pool = records_pool(PostgresSettings(), "rebuild-online")
    client = background_redis(settings)
    publisher = kafka_publisher(settings, client_id="rebuild-online", delivery_timeout_s=30.0)
    replayers: list[subprocess.Popen[bytes]] = []

    def start_stream() -> None:
        supervisor().startProcess("stream")
        replayers.append(start_replayer([c for c in CONCERNS if not c.default]))

    try:
        rebuilt = rebuild_online(
            settings, pool, client, publisher,
            stop_stream=lambda: supervisor().stopProcess("stream"), start_stream=start_stream,
            dataset=settings.dataset, timeout_s=timeout_s)
    except OnlineStateStillThere as exc:
        print(f"rebuild-online: {exc}", file=sys.stderr)
        return 2
    finally:
        for replayer in replayers:  # it has caught up (or the wait timed out): stopped, committed
            replayer.terminate()
            replayer.wait(60)
        publisher.close()
        client.close()
        pool.close()
    print(f"rebuilt: {rebuilt.profiles:,} profiles, {rebuilt.experiments:,} experiment "
          f"definitions and {rebuilt.titles:,} titles from PostgreSQL; the stream "
          f"{'replayed every topic' if rebuilt.caught_up else 'has not caught up yet'}")
    return 0 if rebuilt.caught_up else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.seeder", description=__doc__)
    # The online windows need FRAUD_REACH_DAYS (a terminal's 30 days end 7 days ago); the lake
    # needs more for `make retrain-fraud`: that burn-in before a training week that starts 28
    # days before now. The dev world holds exactly this many days: all of it is replayed.
    parser.add_argument("--transaction-days", type=float, default=LAKE_DAYS_FOR_A_RETRAIN,
                        help="days of transaction history to replay (the features reach "
                             f"{FRAUD_REACH_DAYS} days back; a retrain from the lake needs "
                             f"{LAKE_DAYS_FOR_A_RETRAIN})")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the stream")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--rebuild-online", action="store_true",
                        help="after Redis was lost: restore the online state from PostgreSQL "
                             "and the topics (services/seeder/rebuild.py), publish nothing")
    args = parser.parse_args()
    if args.rebuild_online:
        return rebuild(args.timeout)
    settings = TrainerSettings(service_name="seeder")  # its own Kafka user on the cluster
    now = datetime.now(UTC)
    ensure_topics(settings.kafka_access(), platform_topics(
        settings.kafka_topic_partitions, settings.kafka_replication_factor))
    publisher = kafka_publisher(settings, client_id="seed", delivery_timeout_s=30.0,
                                linger_ms=20)
    pool = records_pool(PostgresSettings(), "seeder")
    try:
        reset_if_other_dataset(settings)
        viewing = read_history(settings)  # before the split only: the future stays unseen
        shift = now - viewing.split
        print(f"{settings.dataset} viewing history: {len(viewing.history):,} watches before "
              f"{viewing.split:%Y-%m-%d %H:%M} UTC, replayed {shift.days:,} days later")
        publish(publisher, watch_messages(viewing.history, shift), len(viewing.history),
                "watches")
        load_profiles(settings, pool, viewing.profiles)
        load_titles(settings, pool, publisher, viewing.titles, shift)

        world = pd.read_parquet(settings.world_dir / "transactions" / "transactions.parquet")
        say_if_short(world, args.transaction_days)
        messages = transaction_history(world, now, args.transaction_days)
        publish(publisher, messages, len(messages), "transactions and labels")
    finally:
        publisher.close()
        pool.close()
    if args.no_wait:
        return 0
    caught_up = wait_for_stream(settings.kafka_access(), args.timeout, stack_groups())
    print("seeded: the stream processor and the fraud scorers have applied every event"
          if caught_up else "the stream has not caught up yet; `make status` shows it")
    return 0 if caught_up else 1


if __name__ == "__main__":
    sys.exit(main())
