"""What the stream processor runs: each concern is a consumer group, its topics and its handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.bus import topics
from services.common.bus.consumer import EventHandler
from services.common.models import ModelRepository
from services.common.redis_client import RedisClient
from services.designs.recs.artifacts import LiveItemArtifacts
from services.stream.experiments import ExperimentEventsHandler
from services.stream.fraud_labels import FraudLabelHandler
from services.stream.titles import CatalogTitlesHandler
from services.stream.transactions import TransactionFeaturesHandler
from services.stream.watches import WatchFeaturesHandler


@dataclass(frozen=True)
class Dependencies:
    redis: RedisClient
    repository: ModelRepository
    namespace: str


@dataclass(frozen=True)
class Concern:
    name: str
    group: str  # the Kafka consumer group: every process running this concern joins it
    topics: tuple[str, ...]
    build: Callable[[Dependencies], EventHandler]
    fetch_wait_ms: int = 0  # > 0: a concern that can wait lets the broker gather (RunnerConfig)
    default: bool = True    # run unless MLSD_STREAM_CONCERNS names the concerns


CONCERNS: tuple[Concern, ...] = (
    Concern("watch-features", "stream-watch-features", (topics.WATCH_EVENTS,),
            lambda d: WatchFeaturesHandler(d.redis, LiveItemArtifacts(d.repository),
                                           d.namespace)),
    # The stream scorer records every transaction it decides whole (one writer, ADR 0007); the
    # state writer records the rest, which the scorer hands over on transactions-unrecorded.
    Concern("unrecorded-transactions", "stream-unrecorded-transactions",
            (topics.TRANSACTIONS_UNRECORDED,),
            lambda d: TransactionFeaturesHandler(d.redis, d.namespace)),
    # Every transaction recorded from `transactions` itself: for a stack without the stream
    # scorer, and for rebuilding the state from the topic (services/seeder/rebuild.py). Beside a
    # scorer it would record each transaction a second time.
    Concern("transaction-features", "stream-transaction-features", (topics.TRANSACTIONS,),
            lambda d: TransactionFeaturesHandler(d.redis, d.namespace), default=False),
    Concern("fraud-labels", "stream-fraud-labels", (topics.FRAUD_LABELS,),
            lambda d: FraudLabelHandler(d.redis, d.namespace)),
    # Counts read by people and by the A/B analysis, not by a request: 100 ms late is on time.
    Concern("experiments", "stream-experiments",
            (topics.EXPOSURES, topics.REC_IMPRESSIONS, topics.REC_CLICKS),
            lambda d: ExperimentEventsHandler(d.redis, d.namespace), fetch_wait_ms=100),
    Concern("catalog-titles", "stream-catalog-titles", (topics.CATALOG,),
            lambda d: CatalogTitlesHandler(d.redis, d.namespace)),
)


class UnknownConcern(ValueError):
    pass


DEFAULT_CONCERNS = tuple(c for c in CONCERNS if c.default)


def select(names: str) -> list[Concern]:
    """"default" (every concern but those a stack runs only by name), "all", or a
    comma-separated list of concern names."""
    if names.strip() == "default":
        return list(DEFAULT_CONCERNS)
    if names.strip() == "all":
        return list(CONCERNS)
    by_name = {c.name: c for c in CONCERNS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise UnknownConcern(f"unknown concern(s) {unknown or names!r}; known: {sorted(by_name)}")
    return [by_name[n] for n in wanted]
