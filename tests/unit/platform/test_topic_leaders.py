"""ensure_topics returns a created topic only once every partition has a leader (on fakes)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaError

from services.common.bus.kafka_bus import _await_leaders
from services.common.bus.topics import TopicSpec


class AdminWhoseMetadataArrives:
    """describe_topics as a broker that learns of a new topic late: first nothing, then
    partitions without a leader, then every one led."""

    def __init__(self, answers: list[list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.calls = 0

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return answer


def topic(name: str, *leaders: int) -> dict[str, Any]:
    return {"name": name, "partitions": [{"partition": i, "leader_id": leader}
                                         for i, leader in enumerate(leaders)]}


def test_waits_until_every_partition_of_every_created_topic_has_a_leader() -> None:
    admin = AdminWhoseMetadataArrives([
        [],                                           # the broker does not know them yet
        [topic("a", 1, 2, 3), topic("b", -1)],        # b's partition has no leader yet
        [topic("a", 1, 2, 3), topic("b", 2)],
    ])
    _await_leaders(admin, [TopicSpec("a", 3), TopicSpec("b", 1)], timeout_s=5)  # type: ignore[arg-type]
    assert admin.calls == 3


def test_a_topic_that_never_gets_its_leaders_is_an_error_naming_it() -> None:
    admin = AdminWhoseMetadataArrives([[topic("a", 1, -1, 3)]])
    with pytest.raises(KafkaError, match=r"\['a'\]"):
        _await_leaders(admin, [TopicSpec("a", 3)], timeout_s=0.3)  # type: ignore[arg-type]
