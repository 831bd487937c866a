"""Pipelines of script calls: each call routed to its slot's node, sent again once when a
failover moved it before anything was sent."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterPipeline, PipelineCommand, RedisCluster
from redis.exceptions import MovedError
from redis.retry import Retry

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


class ClusterPipelines(RedisCluster):
    """A cluster client (no nodes) whose pipelines play one reply per command as the nodes give
    them back (a node that timed out: the TimeoutError as each of its commands' reply), then
    resend as redis-py 8.1's ClusterPipeline does unless told not to (allow_redirections=False):
    every command whose reply is a failure or a redirection again, alone, through the client's
    execute_command. `one_by_one` records those; each answers b"again"."""

    def __init__(self, replies: list[Any], retries: int) -> None:  # no super(): no nodes
        self.replies = replies
        self.retry = Retry(NoBackoff(), retries)
        self.one_by_one: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        return ClusterPipelineOf(self)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.one_by_one.append(args)
        return b"again"


class ClusterPipelineOf:
    def __init__(self, client: ClusterPipelines) -> None:
        self.client = client
        self.queued: list[PipelineCommand] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.queued.append(PipelineCommand(args, options, len(self.queued)))

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return self.send_cluster_commands(self.queued, raise_on_error)

    def send_cluster_commands(self, stack: list[PipelineCommand], raise_on_error: bool = True,
                              allow_redirections: bool = True) -> list[Any]:
        replies = list(self.client.replies)
        if allow_redirections:
            for c in stack:
                if isinstance(replies[c.position], ClusterPipeline.ERRORS_ALLOW_RETRY):
                    replies[c.position] = self.client.execute_command(*c.args, **c.options)
        return replies


def test_a_cluster_client_without_retries_does_not_send_a_slow_nodes_calls_again(
        slot_map: SlotMap) -> None:
    # redis-py would send each again, one by one, each waiting out the deadline (fault 4)
    timeout = redis.TimeoutError("Timeout reading from socket")
    client = ClusterPipelines([b"v", timeout, timeout], retries=0)
    with pytest.raises(redis.TimeoutError):
        send_pipeline(client, [GET.call([f"{{{n}}}k"]) for n in "abc"])
    assert client.one_by_one == []


def test_a_cluster_client_without_retries_follows_a_redirection(slot_map: SlotMap) -> None:
    # after a failover a stale slot map sends a call to a node that no longer holds its slot
    moved = MovedError("3999 127.0.0.1:7004")
    client = ClusterPipelines([b"v", moved], retries=0)
    assert send_pipeline(client, [GET.call(["{a}k"]), GET.call(["{b}k"])]) == [b"v", b"again"]
    assert client.one_by_one == [("EVALSHA", GET.sha, 1, "{b}k")]


def test_a_cluster_client_with_retries_keeps_redis_pys_resends(slot_map: SlotMap) -> None:
    # background clients (consumers): a blip on one node is ridden out as before
    client = ClusterPipelines([b"v", redis.TimeoutError("Timeout reading from socket")],
                              retries=3)
    assert send_pipeline(client, [GET.call(["{a}k"]), GET.call(["{b}k"])]) == [b"v", b"again"]
