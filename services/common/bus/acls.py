"""Least privilege on the cluster topology's Kafka: what each user may do, and the users.

`make run-cluster` and the test harness give every service a user of its own, allowed only the
topics and groups its code uses (services/devstack/kafka_principals.py builds the table; this
module turns a user's grants into ACLs, adds the users and revokes the shared one; docker
compose's cluster profile too, through its kafka-acls one-shot). `service_acls` below is the one
shared services' user of earlier runs, which the tests and benchmarks still grant to a user:

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

from collections.abc import Mapping, Sequence

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError, NoError

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

# A user per service: what each kind of use of a topic needs (a producer: WRITE; a consumer or a
# read from the beginning: READ; ensure_topics: CREATE and ALTER, to add partitions), each with
# DESCRIBE (metadata, end offsets)
PRODUCE_OPERATIONS = (ACLOperation.WRITE, ACLOperation.DESCRIBE)
READ_OPERATIONS = (ACLOperation.READ, ACLOperation.DESCRIBE)
ENSURE_OPERATIONS = (ACLOperation.CREATE, ACLOperation.ALTER, ACLOperation.DESCRIBE)
SCRAM_MECHANISM = "SCRAM-SHA-512"

Grants = Mapping[tuple[ResourceType, str], set[ACLOperation]]
"""(topic or group, its literal name) -> the operations allowed on it."""


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


def acls_on(username: str, grants: Grants) -> list[ACL]:
    """`username`'s ALLOW ACLs, each resource by its literal name, from any host."""
    return [ACL(f"User:{username}", "*", operation, ACLPermissionType.ALLOW,
                ResourcePattern(kind, name, ACLResourcePatternType.LITERAL))
            for (kind, name), operations in sorted(grants.items(), key=lambda g: (g[0][0], g[0][1]))
            for operation in sorted(operations)]


def _admin(access: KafkaAccess, timeout_s: float, client_id: str) -> KafkaAdminClient:
    return KafkaAdminClient(**access.python_config(), client_id=client_id,
                            bootstrap_timeout_ms=int(timeout_s * 1000),
                            request_timeout_ms=int(timeout_s * 1000))


def add_users(admin: KafkaAccess, passwords: Mapping[str, str], timeout_s: float = 30.0) -> None:
    """Create or update SCRAM-SHA-512 users, as the nodes' super user (the same password again
    is no error, so every start may add the same set). A broker learns them from the cluster's
    metadata: a login may be refused for a moment after this returns."""
    client = _admin(admin, timeout_s, "user-setup")
    try:
        outcome = client.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(name, SCRAM_MECHANISM, password)
             for name, password in passwords.items()])
    finally:
        client.close()
    failed = {name: error for name, error in outcome.items() if error is not None}
    if failed:
        raise KafkaError(f"Kafka users not added: {sorted(failed)} "
                         f"({sorted({type(e).__name__ for e in failed.values()})})")


def _all_of(username: str) -> ACLFilter:
    return ACLFilter(f"User:{username}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                     ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))


def _key(acl: ACL) -> tuple[object, ...]:
    pattern = acl.resource_pattern
    return (acl.principal, acl.host, acl.operation, acl.permission_type,
            pattern.resource_type, pattern.resource_name, pattern.pattern_type)


def revoke_user(admin: KafkaAccess, username: str, timeout_s: float = 30.0) -> int:
    """Delete every ACL of `username` and its SCRAM credential (the services' shared user of an
    earlier run, `mlsd`); returns how many ACLs were deleted. A user that does not exist is no
    error."""
    client = _admin(admin, timeout_s, "user-setup")
    try:
        deleted = sum(len(matched) for _, matched, _ in client.delete_acls([_all_of(username)]))
        existing = client.describe_user_scram_credentials([username])
        if existing.get(username):
            client.alter_user_scram_credentials(
                [UserScramCredentialDeletion(username, SCRAM_MECHANISM)])
    finally:
        client.close()
    return deleted


def grant(admin: KafkaAccess, acls: Sequence[ACL], timeout_s: float = 30.0) -> None:
    """Create the ACLs, as a user allowed to (the nodes' super user). An ACL that exists
    already is created again without error, so every start may grant the same set."""
    client = _admin(admin, timeout_s, "acl-setup")
    try:
        outcome = client.create_acls(list(acls))
    finally:
        client.close()
    if outcome["failed"]:  # kafka-python lists each failure's error class
        errors = sorted({getattr(e, "__name__", str(e)) for e in outcome["failed"]})
        raise KafkaError(f"{len(outcome['failed'])} of {len(acls)} ACLs not created: "
                         f"{', '.join(errors)}")


def grant_exactly(admin: KafkaAccess, acls: Sequence[ACL], timeout_s: float = 30.0) -> int:
    """Grant `acls` and delete every other ACL of their principals, so a grant the table no
    longer makes (a topic a service stopped using) does not outlive it on a kept cluster;
    returns how many were deleted."""
    wanted = {_key(a) for a in acls}
    client = _admin(admin, timeout_s, "acl-setup")
    try:
        stale: list[ACL] = []
        for principal in sorted({a.principal for a in acls}):
            existing, error = client.describe_acls(_all_of(principal.removeprefix("User:")))
            if error is not NoError and not isinstance(error, NoError):  # the class, or one
                raise KafkaError(f"ACLs of {principal} not described: {error}")
            stale += [a for a in existing if _key(a) not in wanted]
        if stale:
            client.delete_acls([ACLFilter(a.principal, a.host, a.operation, a.permission_type,
                                          ResourcePatternFilter(
                                              a.resource_pattern.resource_type,
                                              a.resource_pattern.resource_name,
                                              a.resource_pattern.pattern_type))
                                for a in stale])
    finally:
        client.close()
    grant(admin, acls, timeout_s)
    return len(stale)
