"""Least privilege on the cluster topology's Kafka: what the services' user may do.

The brokers run StandardAuthorizer (infra/kafka/server.cluster.properties.template): a request is
refused unless an ACL allows it, except for the nodes' own user (`broker`, a super user), which
grants these. The services' user may, on the platform's topics and their dead-letter twins
alone (by name), read, write, describe them and their configs, create them and add partitions;
on the consumer groups named with the services' prefixes, join, commit, fetch offsets and delete
them (the seeder's rebuild forgets groups). Nothing on the cluster: no topic deletion, no config
change, no ACL or user change. A user without ACLs (any other authenticated principal) gets
nothing: its topics are invisible, its produce and fetch refused (docs/reliability.md, "Kafka's
ACLs").
"""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError

from services.common.bus.topics import platform_topics
from services.common.kafka_access import KafkaAccess

# Every consumer group of a service starts with one of these (the stream's concerns: stream-*;
# the fraud stream scorer: fraud-scorer; records: records-*; the lake's sink: lake-sink), and
# a group setting changed within them needs no new ACL.
SERVICE_GROUP_PREFIXES = ("stream-", "fraud-", "records-", "lake-")

# ALTER: ensure_topics adds partitions to a topic created with fewer than its spec
TOPIC_OPERATIONS = (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE,
                    ACLOperation.DESCRIBE_CONFIGS, ACLOperation.CREATE, ACLOperation.ALTER)
# READ: join, commit and fetch offsets; DELETE: forget_groups (the seeder's rebuild)
GROUP_OPERATIONS = (ACLOperation.READ, ACLOperation.DESCRIBE, ACLOperation.DELETE)


def service_topics() -> list[str]:
    """Every topic a service produces to, consumes or creates: the platform's and their DLQs."""
    return [spec.name for spec in platform_topics(1)]


def service_acls(username: str, topics: Sequence[str] | None = None,
                 group_prefixes: Sequence[str] = SERVICE_GROUP_PREFIXES,
                 groups: Sequence[str] = ()) -> list[ACL]:
    """The ACLs of the services' user: `topics` by name (the platform's by default), groups
    by prefix (and `groups` by name), from any host."""
    principal = f"User:{username}"

    def allow(operation: ACLOperation, pattern: ResourcePattern) -> ACL:
        return ACL(principal, "*", operation, ACLPermissionType.ALLOW, pattern)

    topic_patterns = [ResourcePattern(ResourceType.TOPIC, name, ACLResourcePatternType.LITERAL)
                      for name in (service_topics() if topics is None else topics)]
    group_patterns = [
        *(ResourcePattern(ResourceType.GROUP, prefix, ACLResourcePatternType.PREFIXED)
          for prefix in group_prefixes),
        *(ResourcePattern(ResourceType.GROUP, name, ACLResourcePatternType.LITERAL)
          for name in groups)]
    return [*(allow(op, p) for p in topic_patterns for op in TOPIC_OPERATIONS),
            *(allow(op, p) for p in group_patterns for op in GROUP_OPERATIONS)]


def grant(admin: KafkaAccess, acls: Sequence[ACL], timeout_s: float = 30.0) -> None:
    """Create the ACLs, as a user allowed to (the nodes' super user). An ACL that exists
    already is created again without error, so every start may grant the same set."""
    client = KafkaAdminClient(**admin.python_config(), client_id="acl-setup",
                              bootstrap_timeout_ms=int(timeout_s * 1000),
                              request_timeout_ms=int(timeout_s * 1000))
    try:
        outcome = client.create_acls(list(acls))
    finally:
        client.close()
    if outcome["failed"]:  # kafka-python lists each failure's error class
        errors = sorted({getattr(e, "__name__", str(e)) for e in outcome["failed"]})
        raise KafkaError(f"{len(outcome['failed'])} of {len(acls)} ACLs not created: "
                         f"{', '.join(errors)}")
