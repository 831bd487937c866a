"""Topic names (one source of truth) and their dead-letter twins."""

from __future__ import annotations

from dataclasses import dataclass

WATCH_EVENTS = "watch-events"
TRANSACTIONS = "transactions"
# What the stream scorer did not record in the online fraud state (its store failed for them, or
# they were too old to decide): the state writer's topic, so the scorer is the one writer of every
# transaction it decides (docs/adr/0007-one-writer-of-the-fraud-state.md)
TRANSACTIONS_UNRECORDED = "transactions-unrecorded"
FRAUD_DECISIONS = "fraud-decisions"
# A challenger's decisions on the same transactions, never acted on (services/fraud/shadow.py)
FRAUD_DECISIONS_SHADOW = "fraud-decisions-shadow"
FRAUD_LABELS = "fraud-labels"
EXPOSURES = "exposures"
REC_IMPRESSIONS = "rec-impressions"
REC_CLICKS = "rec-clicks"
CATALOG = "catalog"  # title metadata from the catalog ETL (services/catalog_etl), key content id

ALL_TOPICS = (WATCH_EVENTS, TRANSACTIONS, TRANSACTIONS_UNRECORDED, FRAUD_DECISIONS,
              FRAUD_DECISIONS_SHADOW, FRAUD_LABELS, EXPOSURES, REC_IMPRESSIONS, REC_CLICKS, CATALOG)
DLQ_SUFFIX = ".dlq"
# The fraud stream scorers' consumer group on TRANSACTIONS (MLSD_FRAUD_STREAM_GROUP's default): the
# seeder waits for it, as it records the transactions it decides
FRAUD_SCORER_GROUP = "fraud-scorer"

# A consumer group spreads a topic's partitions over its members, so partitions cap how many
# processes can share a topic. The fraud stream scorers (one process per core, issue 14) need
# room on `transactions`; the other topics keep the platform's default.
MIN_PARTITIONS = {TRANSACTIONS: 12}


def dlq_topic(topic: str) -> str:
    """Where poison messages of `topic` go, with the reason in their headers."""
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1

    @property
    def min_insync_replicas(self) -> int:
        """How many copies an acks=all write needs: all but one of three or more, so one broker
        may fail with no acknowledged event lost and no write refused; one on a single broker."""
        return max(1, self.replication_factor - 1) if self.replication_factor >= 3 else 1

    def configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync_replicas)}


def partitions_of(topic: str, default: int) -> int:
    """How many partitions `topic` gets: the platform's default, or more where it needs them."""
    return max(default, MIN_PARTITIONS.get(topic, 0))


def platform_topics(partitions: int, replication_factor: int = 1) -> list[TopicSpec]:
    """Every topic of the platform and the dead-letter topic of each (DLQs get one partition)."""
    specs = [TopicSpec(t, partitions_of(t, partitions), replication_factor) for t in ALL_TOPICS]
    specs += [TopicSpec(dlq_topic(t), 1, replication_factor) for t in ALL_TOPICS]
    return specs
