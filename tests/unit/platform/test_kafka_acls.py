"""The services' Kafka ACLs (services/common/bus/acls.py) cover what the services use, no more.

The authorizer refuses whatever no ACL allows, so a group or a topic a service uses but the set
leaves out would stop that service on the cluster topology only; these catch it without one.
"""

from __future__ import annotations

from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from services.common.bus.acls import SERVICE_GROUP_PREFIXES, service_acls, service_topics
from services.common.bus.topics import ALL_TOPICS, FRAUD_SCORER_GROUP, dlq_topic
from services.fraud.settings import FraudSettings
from services.lake.events import LAKE_TOPICS
from services.lake.settings import LakeSettings
from services.records.settings import RecordsSettings
from services.stream.concerns import CONCERNS


def covered_groups(username: str = "mlsd") -> list[str]:
    """The groups the default settings use, each checked against the prefixes."""
    records = RecordsSettings()
    return [*(c.group for c in CONCERNS), FRAUD_SCORER_GROUP, FraudSettings().fraud_stream_group,
            records.records_decisions_group, records.records_labels_group,
            LakeSettings().lake_group]


def test_every_group_of_a_service_falls_under_a_granted_prefix() -> None:
    prefixes = {a.resource_pattern.resource_name for a in service_acls("mlsd")
                if a.resource_pattern.resource_type == ResourceType.GROUP}
    assert prefixes == set(SERVICE_GROUP_PREFIXES)
    assert not [g for g in covered_groups() if not g.startswith(SERVICE_GROUP_PREFIXES)]


def test_every_topic_a_service_uses_is_granted_by_name_with_its_dead_letter_twin() -> None:
    granted = {a.resource_pattern.resource_name for a in service_acls("mlsd")
               if a.resource_pattern.resource_type == ResourceType.TOPIC}
    used = {*ALL_TOPICS, *LAKE_TOPICS, *(c for concern in CONCERNS for c in concern.topics)}
    assert used | {dlq_topic(t) for t in used} <= granted
    assert granted == set(service_topics())
    assert {a.resource_pattern.pattern_type for a in service_acls("mlsd")
            if a.resource_pattern.resource_type == ResourceType.TOPIC} == \
        {ACLResourcePatternType.LITERAL}, "topics by name: no prefix or wildcard"


def test_the_services_user_gets_allows_only_and_nothing_on_the_cluster() -> None:
    acls = service_acls("mlsd")
    assert {a.principal for a in acls} == {"User:mlsd"}
    assert {a.permission_type for a in acls} == {ACLPermissionType.ALLOW}
    assert not [a for a in acls if a.resource_pattern.resource_type == ResourceType.CLUSTER]
    assert not [a for a in acls if a.resource_pattern.resource_name == "*"]
    operations = {a.operation for a in acls}
    assert operations.isdisjoint({ACLOperation.ALL, ACLOperation.ALTER_CONFIGS})
    assert ACLOperation.DELETE not in {a.operation for a in acls
                                       if a.resource_pattern.resource_type == ResourceType.TOPIC}


def test_a_topic_and_group_of_ones_own_can_be_granted_alone() -> None:
    acls = service_acls("mlsd", topics=["t"], group_prefixes=(), groups=["g"])
    assert {(a.resource_pattern.resource_type, a.resource_pattern.resource_name,
             a.resource_pattern.pattern_type) for a in acls} == {
        (ResourceType.TOPIC, "t", ACLResourcePatternType.LITERAL),
        (ResourceType.GROUP, "g", ACLResourcePatternType.LITERAL)}
