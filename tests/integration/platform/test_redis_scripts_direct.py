"""Script pipelines on one real Redis: the direct path (hiredis-packed, no redis-py Pipeline)
answers exactly as redis-py's Pipeline does, NOSCRIPT, error replies and lost connections
included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

from services.common import redis_scripts
from services.common.redis_scripts import LuaScript, send_pipeline
from tests.harness import ServerProcess

INCR_AND_ECHO = LuaScript("return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2]}")
FAIL = LuaScript("return redis.error_reply('BOOM ' .. ARGV[1])")
NOTHING = LuaScript("return nil")


@pytest.fixture
def client(redis_server: ServerProcess) -> Iterator[redis.Redis]:
    found = redis.Redis.from_url(redis_server.address)
    found.flushall()
    found.script_flush()
    yield found
    found.close()


def commands() -> list[tuple[Any, ...]]:
    return [INCR_AND_ECHO.call(["n"], 2, b"\x00\xffbytes"), NOTHING.call(["k"]),
            INCR_AND_ECHO.call(["n"], 3, "text"), INCR_AND_ECHO.call(["{a}b"], 1, 1.5)]


def test_the_direct_path_answers_as_redis_pys_pipeline(client: redis.Redis,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    direct = send_pipeline(client, commands(), [INCR_AND_ECHO, NOTHING])
    client.flushall()
    def not_direct(*args: Any) -> list[Any]:
        pytest.fail("a plain command in the batch must go through redis-py's Pipeline")

    monkeypatch.setattr(redis_scripts, "_send_direct", not_direct)
    # a plain command in the batch: redis-py's Pipeline (its reply callbacks apply)
    piped = send_pipeline(client, [*commands(), ("GET", "n")], [INCR_AND_ECHO, NOTHING])
    assert direct == [[2, b"\x00\xffbytes"], None, [5, b"text"], [1, b"1.5"]]
    assert piped[:-1] == direct and piped[-1] == b"5"


def test_scripts_redis_forgot_are_loaded_and_only_their_calls_sent_again(
        client: redis.Redis) -> None:
    client.script_load(NOTHING.source)  # INCR_AND_ECHO is unknown: NOSCRIPT, not run
    replies = send_pipeline(client, commands(), [INCR_AND_ECHO, NOTHING])
    assert replies == [[2, b"\x00\xffbytes"], None, [5, b"text"], [1, b"1.5"]]
    assert client.get("n") == b"5"  # each INCRBY ran once


def test_an_error_reply_is_its_commands_reply_and_the_others_are_read(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    client.script_load(FAIL.source)
    client.script_load(INCR_AND_ECHO.source)
    replies = redis_scripts._send(client, [FAIL.call(["x"], "one"),
                                           INCR_AND_ECHO.call(["n"], 1, "after")])
    assert isinstance(replies[0], ResponseError) and "BOOM one" in str(replies[0])
    assert not isinstance(replies[0], NoScriptError)
    assert replies[1] == [1, b"after"]
    with pytest.raises(ResponseError, match="BOOM two"):
        send_pipeline(client, [FAIL.call(["x"], "two")], [FAIL])
    assert client.ping()  # the connection was read to the end: the next reply is its own


def test_a_connection_lost_while_sending_is_retried_on_a_new_one(
        redis_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # as the services build theirs (redis_client.py): one retry at least
    client = redis.Redis.from_url(redis_server.address, retry=Retry(NoBackoff(), 1))
    client.flushall()
    client.script_load(INCR_AND_ECHO.source)
    connection = client.connection_pool.get_connection()
    client.connection_pool.release(connection)
    real_send = connection.send_packed_command
    failures = [redis.ConnectionError("Connection reset by peer")]

    def reset_once(packed: Any, check_health: bool = True) -> None:
        if failures:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise failures.pop()
        real_send(packed, check_health)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(connection, "send_packed_command", reset_once)
    assert send_pipeline(client, [INCR_AND_ECHO.call(["n"], 1, "b")]) == [[1, b"b"]]
    assert not failures and client.get("n") == b"1"
    client.close()
