"""A Kafka user per service on the cluster topology, each allowed what its code uses, no more.

Each principal is named as its process's `service_name` (PlatformSettings): a process with
MLSD_KAFKA_USERS_DIR logs in as that user, with the password in the folder's file of that name
(services/common/settings.py). The table is built from the code's own topic and group constants
(services/common/bus/topics.py, the event types, the stream's concerns, the services' settings),
so a topic or group changed there changes the grant; tests/unit/platform/test_kafka_principals.py
checks that every producer and consumer of the code is covered and nothing more is granted
(docs/reliability.md, "A Kafka user per service").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kafka.admin import ACL, ACLOperation, ResourceType

from services.common.bus.acls import (
    ENSURE_OPERATIONS,
    PRODUCE_OPERATIONS,
    READ_OPERATIONS,
    acls_on,
)
from services.common.bus.topics import (
    ALL_TOPICS,
    FRAUD_DECISIONS,
    FRAUD_LABELS,
    TRANSACTIONS,
    TRANSACTIONS_UNRECORDED,
    dlq_topic,
)
from services.designs.payloads import EVENT_TYPES
from services.experiments.settings import ExperimentsSettings
from services.fraud.settings import FraudSettings
from services.lake.events import LAKE_TOPICS
from services.lake.settings import LakeSettings
from services.recommender.settings import RecommenderSettings
from services.records.settings import RecordsSettings
from services.stream.concerns import CONCERNS

Groups = Mapping[str, Sequence[str]]  # consumer group -> the topics it consumes


@dataclass(frozen=True)
class KafkaPrincipal:
    """What one service does on Kafka. `consumes`: its groups and their topics (a consumer
    runner also creates each topic and its DLQ if missing, and writes poison events to the DLQ);
    `reads`: topics read outside any group (from the beginning, by partition); `ensures`: topics
    it creates if missing (ensure_topics); `watches`: groups whose lag it reads; `forgets`:
    groups whose offsets it deletes."""

    name: str
    produces: frozenset[str] = frozenset()
    consumes: Groups = field(default_factory=dict)
    reads: frozenset[str] = frozenset()
    ensures: frozenset[str] = frozenset()
    watches: Groups = field(default_factory=dict)
    forgets: frozenset[str] = frozenset()

    @property
    def topics_written(self) -> frozenset[str]:
        return self.produces | {dlq_topic(t) for ts in self.consumes.values() for t in ts}

    @property
    def topics_read(self) -> frozenset[str]:
        return self.reads | {t for ts in self.consumes.values() for t in ts}

    @property
    def topics_ensured(self) -> frozenset[str]:
        consumed = {t for ts in self.consumes.values() for t in ts}
        return self.ensures | consumed | {dlq_topic(t) for t in consumed}

    @property
    def topics_described(self) -> frozenset[str]:
        return frozenset({t for ts in self.watches.values() for t in ts})

    def acls(self) -> list[ACL]:
        """ALLOW ACLs by literal name: nothing on the cluster, no wildcard, no prefix."""
        topics = (self.topics_written | self.topics_read | self.topics_ensured
                  | self.topics_described)
        groups = {*self.consumes, *self.watches, *self.forgets}
        return acls_on(self.name, {
            **{(ResourceType.TOPIC, t): self._topic_operations(t) for t in topics},
            **{(ResourceType.GROUP, g): self._group_operations(g) for g in groups}})

    def _topic_operations(self, topic: str) -> set[ACLOperation]:
        operations = {ACLOperation.DESCRIBE}
        if topic in self.topics_written:
            operations |= set(PRODUCE_OPERATIONS)
        if topic in self.topics_read:
            operations |= set(READ_OPERATIONS)
        if topic in self.topics_ensured:
            operations |= set(ENSURE_OPERATIONS)
        return operations

    def _group_operations(self, group: str) -> set[ACLOperation]:
        operations = {ACLOperation.DESCRIBE}  # offsets fetched: a lag
        if group in self.consumes:
            operations.add(ACLOperation.READ)  # join, commit
        if group in self.forgets:
            operations.add(ACLOperation.DELETE)
        return operations


def _every_topic() -> frozenset[str]:
    return frozenset({*ALL_TOPICS, *(dlq_topic(t) for t in ALL_TOPICS)})


def _principals() -> tuple[KafkaPrincipal, ...]:
    fraud, records, lake = FraudSettings(), RecordsSettings(), LakeSettings()
    event_topics = frozenset(t.topic for t in EVENT_TYPES.values())
    stream_groups = {c.group: c.topics for c in CONCERNS}
    title_topic = EVENT_TYPES["title"].topic
    return (
        # the HTTP edge: every event type to its topic
        KafkaPrincipal("ingest", produces=event_topics),
        KafkaPrincipal("stream", consumes=stream_groups),
        # the HTTP scorer: decisions, and what its store failed to record to the state writer
        KafkaPrincipal("fraud", produces=frozenset({fraud.fraud_decisions_topic,
                                                    TRANSACTIONS_UNRECORDED})),
        KafkaPrincipal("fraud_stream",
                       consumes={fraud.fraud_stream_group: (TRANSACTIONS,)},
                       produces=frozenset({fraud.fraud_decisions_topic,
                                           fraud.fraud_shadow_topic, TRANSACTIONS_UNRECORDED})),
        KafkaPrincipal("records",  # the decision and label writers; the catalog outbox's relay
                       consumes={records.records_decisions_group: (FRAUD_DECISIONS,),
                                 records.records_labels_group: (FRAUD_LABELS,)},
                       produces=frozenset({title_topic})),
        KafkaPrincipal("lake", consumes={lake.lake_group: LAKE_TOPICS}),
        KafkaPrincipal("recommender",
                       produces=frozenset({RecommenderSettings().recommender_impressions_topic})),
        KafkaPrincipal("experiments",
                       produces=frozenset({ExperimentsSettings().experiments_exposures_topic})),
        KafkaPrincipal("catalog_etl", produces=frozenset({title_topic}),
                       ensures=frozenset({title_topic, dlq_topic(title_topic)})),
        # replays the worlds' events (and titles), creates every topic, waits for the stream and
        # the fraud scorers; before a rebuild (--rebuild-online) forgets the stream's groups and
        # waits for all of them
        KafkaPrincipal("seeder", produces=event_topics, ensures=_every_topic(),
                       watches={**stream_groups, fraud.fraud_stream_group: (TRANSACTIONS,)},
                       forgets=frozenset(stream_groups)),
        # waits for the stream's experiment group and the lake's sink to catch up
        KafkaPrincipal("simulator", watches={
            **{c.group: c.topics for c in CONCERNS if c.name == "experiments"},
            lake.lake_group: LAKE_TOPICS}),
        # the fraud retrain's feedback: decisions and labels from their beginning
        KafkaPrincipal("trainer", reads=frozenset({fraud.fraud_decisions_topic, FRAUD_LABELS})),
        # the chaos tests' and benchmarks' own clients: they produce poison and marked events to
        # every topic, read every topic and DLQ back, and watch every group's lag; they create
        # and delete nothing
        KafkaPrincipal("chaos", produces=_every_topic(), reads=_every_topic(),
                       watches={**stream_groups, fraud.fraud_stream_group: (TRANSACTIONS,),
                                records.records_decisions_group: (FRAUD_DECISIONS,),
                                records.records_labels_group: (FRAUD_LABELS,),
                                lake.lake_group: LAKE_TOPICS}),
    )


PRINCIPALS: dict[str, KafkaPrincipal] = {p.name: p for p in _principals()}
"""Every Kafka user of the cluster topology but the nodes' own (`broker`), by name."""
