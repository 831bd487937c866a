"""Pipelines of script calls: each call routed to its slot's node, sent again once when a
failover moved it before anything was sent."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from services.common import redis_scripts
from services.common.redis_client import route_by_key
from services.common.redis_scripts import LuaScript, send_pipeline

GET = LuaScript("return redis.call('GET', KEYS[1])")


class SlotMap:
    """Where each key lives, as the cluster client's slot map says (route_by_key's answer)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def route(self, client: Any, key: str) -> dict[str, Any]:
        return {"target_nodes": self.owner}


class Pipelines:
    """A client whose pipelines record what was queued and play the next outcome: replies, or
    an exception raised before sending (which may move the slot map, as redis-py's refresh)."""

    def __init__(self, slot_map: SlotMap, *outcomes: tuple[list[Any] | Exception, str]) -> None:
        self.slot_map = slot_map
        self.outcomes = list(outcomes)
        self.sent: list[list[tuple[tuple[Any, ...], dict[str, Any]]]] = []

    def pipeline(self, transaction: bool) -> Pipelines:
        self.sent.append([])
        return self

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.sent[-1].append((args, options))

    def execute(self, raise_on_error: bool) -> list[Any]:
        outcome, owner_after = self.outcomes.pop(0)
        self.slot_map.owner = owner_after
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def slot_map(monkeypatch: pytest.MonkeyPatch) -> SlotMap:
    slot_map = SlotMap("node-1")
    monkeypatch.setattr(redis_scripts, "route_by_key", slot_map.route)
    return slot_map


def test_a_script_call_goes_to_the_node_of_its_first_key(slot_map: SlotMap) -> None:
    client = Pipelines(slot_map, ([b"v"], "node-1"))
    assert send_pipeline(client, [GET.call(["{a}k"])]) == [b"v"]  # type: ignore[arg-type]
    assert client.sent == [[(("EVALSHA", GET.sha, 1, "{a}k"), {"target_nodes": "node-1"})]]


def test_plain_commands_and_calls_without_keys_are_routed_by_redis_py(slot_map: SlotMap) -> None:
    client = Pipelines(slot_map, ([b"v", b"w"], "node-1"))
    send_pipeline(client, [("GET", "{a}k"), ("EVALSHA", GET.sha, 0)])  # type: ignore[arg-type]
    assert [options for _, options in client.sent[0]] == [{}, {}]


def test_calls_refused_before_sending_go_again_once_when_a_failover_moved_them(
        slot_map: SlotMap) -> None:
    client = Pipelines(slot_map, (redis.ConnectionError("Error 111 connecting"), "node-4"),
                       ([b"v"], "node-4"))
    assert send_pipeline(client, [GET.call(["{a}k"])]) == [b"v"]  # type: ignore[arg-type]
    assert [options for sent in client.sent for _, options in sent] == [
        {"target_nodes": "node-1"}, {"target_nodes": "node-4"}]


def test_calls_refused_while_the_slot_map_stays_are_not_sent_again(slot_map: SlotMap) -> None:
    client = Pipelines(slot_map, (redis.TimeoutError("Timeout connecting"), "node-1"),
                       ([b"never"], "node-1"))
    with pytest.raises(redis.TimeoutError):
        send_pipeline(client, [GET.call(["{a}k"])])  # type: ignore[arg-type]
    assert len(client.sent) == 1


def test_calls_are_sent_again_at_most_once(slot_map: SlotMap) -> None:
    client = Pipelines(slot_map, (redis.ConnectionError("1"), "node-4"),
                       (redis.ConnectionError("2"), "node-5"), ([b"never"], "node-5"))
    with pytest.raises(redis.ConnectionError, match="2"):
        send_pipeline(client, [GET.call(["{a}k"])])  # type: ignore[arg-type]
    assert len(client.sent) == 2


def test_a_single_server_needs_no_route() -> None:
    assert route_by_key(redis.Redis(), "{a}k") == {}
