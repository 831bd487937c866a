"""Pipelines of plain commands and Lua scripts (EVALSHA), safe to send after a script flush."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from services.common.features import FeatureStoreUnavailable
from services.common.features.redis_store import UNAVAILABLE_ERRORS
from services.common.redis_client import RedisClient

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


def run_pipeline(client: RedisClient, commands: Sequence[Command],
                 scripts: Sequence[LuaScript] = ()) -> list[Any]:
    """Send the commands as one pipeline (transaction=False) and return their replies.

    A script Redis no longer knows (restart, failover, SCRIPT FLUSH) fails with NOSCRIPT without
    running; only those commands are sent again after loading `scripts`. Resending the whole
    pipeline would run the counters in it twice. Any other error reply is raised.
    """
    replies = _send(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        logger.info("loading lua scripts", extra={"scripts": [s.sha for s in scripts]})
        with unavailable_as_domain_error():
            for script in scripts:
                client.script_load(script.source)
        for i, reply in zip(missing, _send(client, [commands[i] for i in missing]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            # A cluster pipeline hands a node's timeout or lost connection back as a reply, not
            # raised: it is an outage like any other (seen as a 500 under `make chaos`, fault 4)
            with unavailable_as_domain_error():
                raise reply
    return replies


def _send(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    with unavailable_as_domain_error():
        return list(pipe.execute(raise_on_error=False))


@contextmanager
def unavailable_as_domain_error() -> Iterator[None]:
    """Redis down, slow or read-only becomes FeatureStoreUnavailable (a ConnectionError): the
    consumer runner retries it, a service serves a degraded answer."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise FeatureStoreUnavailable(f"redis did not answer: {exc}") from exc
