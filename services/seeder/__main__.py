"""`python -m services.seeder`: publish the worlds' history to Kafka, then wait for the stream."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice

import pandas as pd
from tqdm import tqdm

from services.common.bus.clients import kafka_publisher
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import OutboundMessage, Publisher, publish_or_raise
from services.common.bus.topics import platform_topics
from services.common.recs_online import write_profiles, write_release_dates
from services.common.redis_client import background_redis
from services.seeder.history import recent, transaction_messages, watch_messages
from services.stream.concerns import CONCERNS
from services.trainer.pipeline import TrainerSettings

CHUNK = 5_000


def chunks(messages: Iterable[OutboundMessage]) -> Iterator[list[OutboundMessage]]:
    iterator = iter(messages)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


def publish(publisher: Publisher, messages: Iterable[OutboundMessage], total: int,
            what: str) -> None:
    with tqdm(total=total, desc=f"publish {what}", unit="ev", unit_scale=True) as bar:
        for chunk in chunks(messages):
            publish_or_raise(publisher, chunk)
            bar.update(len(chunk))


def stream_lag(bootstrap: str) -> int:
    """Events the stream processor's consumer groups have not applied yet."""
    return sum(group_lags(bootstrap, {c.group: c.topics for c in CONCERNS}).values())


def wait_for_stream(bootstrap: str, timeout_s: float) -> bool:
    start_lag = stream_lag(bootstrap)
    deadline = time.monotonic() + timeout_s
    with tqdm(total=start_lag, desc="stream catching up", unit="ev", unit_scale=True) as bar:
        lag = start_lag
        while lag > 0 and time.monotonic() < deadline:
            time.sleep(1.0)
            lag = stream_lag(bootstrap)
            bar.n = max(0, start_lag - lag)
            bar.refresh()
    return lag == 0


def load_catalog(settings: TrainerSettings, users: pd.DataFrame, titles: pd.DataFrame,
                 shift: timedelta) -> None:
    """Batch data, not events, straight into Redis: the account system's profiles (kind,
    maturity limit; the recommender reads a user's limit in its one round trip) and the
    catalog's release dates, moved by the same shift as the replayed history (else every title
    would look `shift` older to the ranker than it did in training)."""
    client = background_redis(settings)
    try:
        write_profiles(client, list(zip(users["user_id"], users["profile"],
                                        users["max_maturity"].astype(int), strict=True)),
                       settings.feature_namespace)
        released = (titles["release_date"] + shift).map(lambda t: t.timestamp())
        write_release_dates(client, list(zip(titles["content_id"], released, strict=True)),
                            settings.feature_namespace)
    finally:
        client.close()
    print(f"catalog: {len(users):,} profiles with their maturity limits, "
          f"{len(titles):,} release dates moved by {shift.days} days")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.seeder", description=__doc__)
    parser.add_argument("--transaction-days", type=float, default=31.0,
                        help="days of transaction history to replay (the longest window is 30)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the stream")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    settings = TrainerSettings()
    now = datetime.now(UTC)
    ensure_topics(settings.kafka_bootstrap_servers, platform_topics(
        settings.kafka_topic_partitions, settings.kafka_replication_factor))
    publisher = kafka_publisher(settings, client_id="seed", delivery_timeout_s=30.0,
                                linger_ms=20)
    try:
        worlds = settings.world_dir
        interactions = pd.read_parquet(worlds / "viewing" / "interactions.parquet")
        split = interactions["timestamp"].max() - pd.Timedelta(days=7)
        history = interactions[interactions["timestamp"] < split]  # the future stays unseen
        shift = now - split.to_pydatetime()
        publish(publisher, watch_messages(history, shift), len(history), "watches")
        load_catalog(settings, pd.read_parquet(worlds / "viewing" / "users.parquet"),
                     pd.read_parquet(worlds / "viewing" / "titles.parquet"), shift)

        transactions = recent(pd.read_parquet(worlds / "transactions" / "transactions.parquet"),
                              "tx_datetime", args.transaction_days)
        # Whole weeks: weekday and hour of day (two of the model's features) survive the shift.
        gap = now - transactions["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
        shift = timedelta(weeks=math.floor(gap / timedelta(weeks=1)))
        messages = list(transaction_messages(transactions, shift, now))
        publish(publisher, messages, len(messages), "transactions and labels")
    finally:
        publisher.close()
    if args.no_wait:
        return 0
    caught_up = wait_for_stream(settings.kafka_bootstrap_servers, args.timeout)
    print("seeded: the stream processor has applied every event" if caught_up
          else "the stream processor has not caught up yet; `make status` shows it")
    return 0 if caught_up else 1


if __name__ == "__main__":
    sys.exit(main())
