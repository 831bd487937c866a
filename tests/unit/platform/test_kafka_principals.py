"""A Kafka user per service (services/devstack/kafka_principals.py): each allowed what its code
uses, no more.

The authorizer refuses whatever no ACL allows, so a topic or group a service uses but its user
lacks would stop that service on the cluster topology only; these catch it without one. What a
service uses is read here from other places in the code than the table reads it from (the
simulator's and the seeder's own constants, the event types, the services' settings), and the
source is scanned for every call that builds a Kafka client, so a new producer or consumer in a
package without a user fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from services.catalog_etl.job import TITLE
from services.common.bus.topics import (
    ALL_TOPICS,
    FRAUD_DECISIONS,
    FRAUD_DECISIONS_SHADOW,
    FRAUD_LABELS,
    TRANSACTIONS,
    TRANSACTIONS_UNRECORDED,
    dlq_topic,
    platform_topics,
)
from services.designs.payloads import EVENT_TYPES
from services.devstack.kafka_principals import PRINCIPALS, KafkaPrincipal
from services.lake.events import LAKE_TOPICS
from services.lake.settings import LakeSettings
from services.records.settings import RecordsSettings
from services.seeder.catchup import stack_groups
from services.simulator import loop as simulator_loop
from services.simulator import traffic as simulator_traffic
from services.stream.concerns import CONCERNS

REPO_ROOT = Path(__file__).resolve().parents[3]

# A call that builds a Kafka client or talks to the brokers (services/common/bus), and the
# packages of services/ that make one: each must be a user's (its processes' service_name), but
# devstack, which acts as the nodes' own user (`broker`), and the platform that defines them.
KAFKA_CALLS = re.compile(r"\b(kafka_publisher|kafka_record_source|build_kafka_consumer|"
                         r"off_path_publishing|kafka_connector|ensure_topics|group_lags|"
                         r"forget_groups|records_to_end|read_topic)\(")
USERS_OF_PACKAGE = {
    "ingest": {"ingest"}, "stream": {"stream"}, "fraud": {"fraud", "fraud_stream"},
    "records": {"records"}, "lake": {"lake"}, "recommender": {"recommender"},
    "experiments": {"experiments"}, "catalog_etl": {"catalog_etl"}, "seeder": {"seeder"},
    "simulator": {"simulator"}, "trainer": {"trainer"},
}
NOT_A_USER = {"common", "devstack"}


def topics_with(principal: KafkaPrincipal, operation: ACLOperation) -> set[str]:
    return {a.resource_pattern.resource_name for a in principal.acls()
            if a.resource_pattern.resource_type == ResourceType.TOPIC
            and a.operation == operation}


def groups_with(principal: KafkaPrincipal, operation: ACLOperation) -> set[str]:
    return {a.resource_pattern.resource_name for a in principal.acls()
            if a.resource_pattern.resource_type == ResourceType.GROUP
            and a.operation == operation}


def test_every_package_that_makes_a_kafka_client_has_a_user_of_its_own() -> None:
    packages = {path.relative_to(REPO_ROOT / "services").parts[0]
                for path in (REPO_ROOT / "services").rglob("*.py")
                if KAFKA_CALLS.search(path.read_text())}
    assert packages - NOT_A_USER, "the scan found no client: it would check nothing"
    assert not packages - NOT_A_USER - set(USERS_OF_PACKAGE), \
        "a package builds a Kafka client but no user of kafka_principals is its"
    assert {u for p in packages - NOT_A_USER for u in USERS_OF_PACKAGE[p]} <= set(PRINCIPALS)
    # the tests' and benchmarks' own (make chaos, the cluster tests) beside the services'
    assert set(PRINCIPALS) == {u for us in USERS_OF_PACKAGE.values() for u in us} | {"chaos"}


def test_ingest_may_write_each_event_types_topic_and_read_none() -> None:
    ingest = PRINCIPALS["ingest"]
    assert topics_with(ingest, ACLOperation.WRITE) == {t.topic for t in EVENT_TYPES.values()}
    assert not topics_with(ingest, ACLOperation.READ)
    assert not groups_with(ingest, ACLOperation.DESCRIBE)


def test_each_consumer_group_is_its_services_and_reads_only_its_topics() -> None:
    records, lake = RecordsSettings(), LakeSettings()
    consumers = {
        "stream": {c.group: set(c.topics) for c in CONCERNS},
        "fraud_stream": {"fraud-scorer": {TRANSACTIONS}},
        "records": {records.records_decisions_group: {FRAUD_DECISIONS},
                    records.records_labels_group: {FRAUD_LABELS}},
        "lake": {lake.lake_group: set(LAKE_TOPICS)},
    }
    for name, groups in consumers.items():
        principal = PRINCIPALS[name]
        assert groups_with(principal, ACLOperation.READ) == set(groups), name
        consumed = {t for topics in groups.values() for t in topics}
        assert topics_with(principal, ACLOperation.READ) == consumed, name
        # a runner writes a poison event to its topic's DLQ, and creates both if missing
        assert {dlq_topic(t) for t in consumed} <= topics_with(principal, ACLOperation.WRITE)
        assert consumed | {dlq_topic(t) for t in consumed} <= \
            topics_with(principal, ACLOperation.CREATE)
    # no two services share a consumer group
    owners = [g for p in PRINCIPALS.values() for g in groups_with(p, ACLOperation.READ)]
    assert len(owners) == len(set(owners))


def test_the_producers_write_what_their_code_publishes_and_nothing_else() -> None:
    written = {
        "fraud": {FRAUD_DECISIONS, TRANSACTIONS_UNRECORDED},
        "fraud_stream": {FRAUD_DECISIONS, FRAUD_DECISIONS_SHADOW, TRANSACTIONS_UNRECORDED,
                         dlq_topic(TRANSACTIONS)},
        "records": {TITLE.topic, dlq_topic(FRAUD_DECISIONS), dlq_topic(FRAUD_LABELS)},
        "recommender": {"rec-impressions"},
        "experiments": {"exposures"},
        "catalog_etl": {TITLE.topic},
        "simulator": set(), "trainer": set(),
    }
    for name, topics in written.items():
        assert topics_with(PRINCIPALS[name], ACLOperation.WRITE) == topics, name
    # the recommender may not write fraud's decisions, nor read anything
    assert FRAUD_DECISIONS not in topics_with(PRINCIPALS["recommender"], ACLOperation.WRITE)
    assert not topics_with(PRINCIPALS["recommender"], ACLOperation.READ)


def test_the_jobs_watch_and_forget_the_groups_their_own_constants_name() -> None:
    seeder, simulator = PRINCIPALS["seeder"], PRINCIPALS["simulator"]
    assert set(stack_groups()) <= groups_with(seeder, ACLOperation.DESCRIBE)
    assert {t for ts in stack_groups().values() for t in ts} <= \
        topics_with(seeder, ACLOperation.DESCRIBE)
    # the rebuild forgets every group of the stream, then waits for each
    assert {c.group for c in CONCERNS} == groups_with(seeder, ACLOperation.DELETE)
    assert {t for c in CONCERNS for t in c.topics} <= topics_with(seeder, ACLOperation.DESCRIBE)
    assert {spec.name for spec in platform_topics(1)} == topics_with(seeder, ACLOperation.CREATE)
    assert not groups_with(seeder, ACLOperation.READ), "the seeder joins no group"
    watched = {simulator_traffic.STREAM_GROUP, simulator_loop.LAKE_GROUP}
    assert groups_with(simulator, ACLOperation.DESCRIBE) == watched
    assert set(simulator_loop.LAKE_TOPICS) <= topics_with(simulator, ACLOperation.DESCRIBE)
    assert topics_with(PRINCIPALS["trainer"], ACLOperation.READ) == {FRAUD_DECISIONS,
                                                                       FRAUD_LABELS}


def test_the_tooling_user_reads_and_writes_every_topic_but_creates_and_deletes_none() -> None:
    chaos = PRINCIPALS["chaos"]
    every = {*ALL_TOPICS, *(dlq_topic(t) for t in ALL_TOPICS)}
    assert topics_with(chaos, ACLOperation.WRITE) == topics_with(chaos, ACLOperation.READ) == every
    assert not topics_with(chaos, ACLOperation.CREATE) | topics_with(chaos, ACLOperation.DELETE)
    assert not groups_with(chaos, ACLOperation.READ) | groups_with(chaos, ACLOperation.DELETE)


@pytest.mark.parametrize("name", sorted(PRINCIPALS))
def test_a_user_gets_allows_by_literal_name_and_nothing_on_the_cluster(name: str) -> None:
    acls = PRINCIPALS[name].acls()
    assert acls, f"{name} has no ACL"
    assert {a.principal for a in acls} == {f"User:{name}"}
    assert {a.permission_type for a in acls} == {ACLPermissionType.ALLOW}
    assert {a.resource_pattern.pattern_type for a in acls} == {ACLResourcePatternType.LITERAL}
    assert {a.resource_pattern.resource_type for a in acls} <= {ResourceType.TOPIC,
                                                                 ResourceType.GROUP}
    assert not [a for a in acls if a.resource_pattern.resource_name == "*"]
    assert {a.operation for a in acls}.isdisjoint({ACLOperation.ALL, ACLOperation.ALTER_CONFIGS})
    assert not [a for a in acls if a.operation == ACLOperation.DELETE
                and a.resource_pattern.resource_type == ResourceType.TOPIC]
    assert len(acls) == len({(a.operation, a.resource_pattern.resource_type,
                              a.resource_pattern.resource_name) for a in acls})


def test_the_docs_table_names_every_user() -> None:
    text = (REPO_ROOT / "docs/reliability.md").read_text()
    section = text.split("## A Kafka user per service", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().split()[0].strip("`") for line in section.splitlines()
            if line.startswith("| `")}
    assert rows == set(PRINCIPALS)
