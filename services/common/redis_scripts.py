"""Pipelines of plain commands and Lua scripts (EVALSHA), gathered by script and slot, safe to
send after a script flush."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import hiredis
import redis
from redis.cluster import PipelineCommand, RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError, ResponseError, TryAgainError

from services.common.features import FeatureStoreUnavailable
from services.common.features.redis_store import UNAVAILABLE_ERRORS
from services.common.redis_client import RedisClient, route_by_key

logger = logging.getLogger(__name__)

Command = tuple[Any, ...]


@dataclass(frozen=True)
class LuaScript:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def call(self, keys: Sequence[str], *args: Any) -> Command:
        """The EVALSHA command that runs this script (one slot: all keys share a hash tag)."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


class Script(Protocol):
    """A Lua script Redis knows by the SHA-1 of its source (LuaScript, a design's own kind)."""

    @property
    def source(self) -> str: ...

    @property
    def sha(self) -> str: ...


ScriptCall = tuple[Script, Sequence[str], Sequence[Any]]  # a script, one entity's keys, its args


def warm(client: RedisClient, scripts: Sequence[Script] = ()) -> bool:
    """Before a service says it is ready: a connection to every master (a cluster's, each with
    its AUTH and handshake) and the service's scripts loaded there, so its first requests pay
    neither. Each worker's first request used to: the connections opened on its clock, and on
    fresh nodes NOSCRIPT, SCRIPT LOAD on every master and the calls again (the soak's start,
    docs/reliability.md). Redis down at start is logged and False, not raised: the service
    starts as it did, its breakers judging Redis."""
    try:
        if isinstance(client, RedisCluster):
            client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            client.ping()
        for script in scripts:  # on a cluster SCRIPT LOAD goes to every master
            client.script_load(script.source)
    except UNAVAILABLE_ERRORS as exc:
        logger.warning("redis not warmed: its first requests open their own connections",
                       extra={"error": str(exc)})
        return False
    return True


def run_pipeline(client: RedisClient, commands: Sequence[Command],
                 scripts: Sequence[Script] = ()) -> list[Any]:
    """send_pipeline, with Redis down, slow or read-only raised as FeatureStoreUnavailable."""
    with unavailable_as_domain_error():
        return send_pipeline(client, commands, scripts)


def send_pipeline(client: RedisClient, commands: Sequence[Command],
                  scripts: Sequence[Script] = ()) -> list[Any]:
    """Send the commands as one pipeline (transaction=False) and return their replies.

    A script Redis no longer knows (restart, failover, SCRIPT FLUSH, a new node) fails with
    NOSCRIPT without running; only those commands are sent again after loading `scripts`.
    Resending the whole pipeline would run the counters in it twice. Any other error reply is
    raised as redis-py raised it: the caller's adapter translates it into its port's error.
    On a cluster each script call goes straight to its slot's node, and a pipeline refused
    before anything was sent goes once more when a failover moved one of its calls (_send).
    """
    replies = _send(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        logger.info("loading lua scripts", extra={"scripts": [s.sha for s in scripts]})
        for script in scripts:
            client.script_load(script.source)
        for i, reply in zip(missing, _send(client, [commands[i] for i in missing]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            # A cluster pipeline hands a node's timeout or lost connection back as a reply, not
            # raised: it is an outage like any other (seen as a 500 under `make chaos`, fault 4)
            raise reply
    return replies


@dataclass
class _Gathered:
    """Calls of one script that go as one EVALSHA: on Redis Cluster, those whose keys share a
    slot (a script runs on one node)."""

    script: Script
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each entity's place among the calls

    def command(self) -> Command:
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


def gather(client: RedisClient, calls: Sequence[ScriptCall], per_call: int) -> list[_Gathered]:
    """The calls gathered by script (and slot, on a cluster), each group's calls in their order,
    at most `per_call` a group."""
    open_groups: dict[tuple[str, int], _Gathered] = {}
    done: list[_Gathered] = []
    slot = client.keyslot if isinstance(client, RedisCluster) else (lambda key: 0)
    for position, (script, keys, args) in enumerate(calls):
        where = (script.sha, slot(keys[0]))
        group = open_groups.get(where)
        if group is None or len(group.positions) == per_call:
            group = open_groups[where] = _Gathered(script)
            done.append(group)
        group.keys += keys
        group.args += args
        group.positions.append(position)
    return done


def send_gathered(client: RedisClient, commands: Sequence[Command], calls: Sequence[ScriptCall],
                  per_call: int) -> tuple[list[Any], list[Any]]:
    """One pipeline: the plain commands, then the script calls gathered (gather); their replies
    apart, each call's reply in the calls' order.

    A gathered script runs its body once per entity (KEYS and ARGV laid end to end) and replies
    with one reply per entity, in order: Redis's cost of a call is then paid once for many.
    transaction=False: a cluster pipeline may fan out to several nodes; every call touches one
    slot and is atomic there. NOSCRIPT and errors as send_pipeline.
    """
    groups = gather(client, calls, per_call)
    scripts = list({group.script.sha: group.script for group in groups}.values())
    replies = send_pipeline(client, [*commands, *(group.command() for group in groups)], scripts)
    ordered: list[Any] = [None] * len(calls)
    for group, reply in zip(groups, replies[len(commands):], strict=True):
        for position, entity_reply in zip(group.positions, reply, strict=True):
            ordered[position] = entity_reply
    return replies[:len(commands)], ordered


def _send(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    routes = [_route(client, command) for command in commands]
    try:
        return _send_routed(client, commands, routes)
    except (redis.ConnectionError, redis.TimeoutError):
        # Raised, not replied: no command was sent (redis-py hands errors after sending back as
        # replies), and a cluster client has re-read its slot map. A failover moved a slot when
        # a call's node changed: send again on the new map, once. (redis-py's own retry keeps
        # the old node of the calls it had not reached.) Unchanged, the outage is real.
        again = [_route(client, command) for command in commands]
        if again == routes:
            raise
        return _send_routed(client, commands, again)


def _send_routed(client: RedisClient, commands: Sequence[Command],
                 routes: Sequence[dict[str, Any]]) -> list[Any]:
    if isinstance(client, redis.Redis) and all(c[0] == "EVALSHA" for c in commands):
        return _send_direct(client, commands)
    if isinstance(client, RedisCluster) and client.retry.get_retries() == 0:
        return _send_cluster_once(client, commands, routes)
    pipe = client.pipeline(transaction=False)
    for command, route in zip(commands, routes, strict=True):
        pipe.execute_command(*command, **route)
    return list(pipe.execute(raise_on_error=False))


REDIRECTIONS = (MovedError, AskError, TryAgainError)
"""A node's answer that it did not run the command and where (or when) it may: not a failure."""


def _send_cluster_once(client: RedisCluster, commands: Sequence[Command],
                       routes: Sequence[dict[str, Any]]) -> list[Any]:
    """A cluster pipeline for a client without retries (request_path_redis): a node that timed
    out or cut the connection gives each of its commands that error as its reply; only the
    commands a node redirected (MOVED after a failover, ASK, TRYAGAIN) are sent again, one by
    one as redis-py sends them, following the redirection.

    redis-py's ClusterPipeline sends every command of a failed node again one at a time,
    whatever the client's Retry, and each that times out waits out the deadline and re-reads
    the slot map: with every master paused, fraud's first failed batch of one transaction
    took up to 0.54 s on its 20-ms deadline (fault 4, docs/reliability.md).
    Sending a timed-out script call again could also run it twice: a slow node may have run
    it. redis-py 8.1 sends a pipeline without those resends only through
    send_cluster_commands(allow_redirections=False), which takes a PipelineCommand stack
    rather than queued calls."""
    stack = [PipelineCommand(command, dict(route), position)  # type: ignore[no-untyped-call]
             for position, (command, route) in enumerate(zip(commands, routes, strict=True))]
    pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    replies = list(pipe.send_cluster_commands(stack, raise_on_error=False,
                                              allow_redirections=False))
    for position, reply in enumerate(replies):
        if isinstance(reply, REDIRECTIONS):
            try:
                replies[position] = client.execute_command(  # type: ignore[no-untyped-call]
                    *commands[position], **routes[position])
            except redis.RedisError as error:
                replies[position] = error
    return replies


def _send_direct(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Script calls on one server, as a pipeline without redis-py's Pipeline: each command
    packed by hiredis in one call, all sent at once on one connection, the replies read in order.
    Pipeline.execute spends Python on every argument (a type check each, hundreds a call) and on
    its bookkeeping: about 7 % of the scorer's CPU in batches of 5 to 20, measured side by side
    (docs/fraud.md). The same replies: EVALSHA has no response callback, and an error
    reply (NOSCRIPT) is that command's reply, as with raise_on_error=False. A lost connection is
    retried as the client's Retry says, the whole pipeline again, as Pipeline.execute does."""
    pool = client.connection_pool
    connection = pool.get_connection()
    packed = [b"".join([hiredis.pack_command(command) for command in commands])]

    def send_and_read() -> list[Any]:
        connection.send_packed_command(packed)  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    try:
        return connection.retry.call_with_retry(
            send_and_read, lambda _error: connection.disconnect())  # type: ignore[no-untyped-call]
    finally:
        pool.release(connection)


def _route(client: RedisClient, command: Command) -> dict[str, Any]:
    """A script call straight to its slot's node (route_by_key); plain commands as redis-py
    routes them (it reads their keys from its own table, without asking a node)."""
    if command[0] == "EVALSHA" and int(command[2]) > 0:
        return route_by_key(client, command[3])
    return {}


@contextmanager
def unavailable_as_domain_error() -> Iterator[None]:
    """Redis down, slow or read-only becomes FeatureStoreUnavailable (a ConnectionError): the
    consumer runner retries it, a service serves a degraded answer."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise FeatureStoreUnavailable(f"redis did not answer: {exc}") from exc
