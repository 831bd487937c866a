"""Where definitions live: a Redis hash (the source of truth at run time) and its in-memory fake.

Layout (spec in docs/experiments.md), `<ns>` the platform's MLSD_FEATURE_NAMESPACE:

    <ns>:exp_definitions:{experiments}          hash: experiment key -> definition JSON
    <ns>:exp_definitions_version:{experiments}  int, INCR by every write

Both keys share one hash tag, so a write (HSET + INCR in MULTI) is atomic, on a cluster too.
Readers poll the version (one GET) and read the hash only when it moved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from services.common.redis_client import RedisClient
from services.designs.experiments.definitions import (
    ExperimentDefinition,
    InvalidDefinition,
    parse_definition,
)

logger = logging.getLogger(__name__)

TAG = "{experiments}"


def definitions_key(namespace: str = "fs") -> str:
    return f"{namespace}:exp_definitions:{TAG}"


def version_key(namespace: str = "fs") -> str:
    return f"{namespace}:exp_definitions_version:{TAG}"


@dataclass(frozen=True)
class Snapshot:
    """Every stored definition at one version. `invalid` names the keys whose stored JSON no
    longer validates (written around the API, or by an older release); they are left out."""

    version: int
    definitions: tuple[ExperimentDefinition, ...]
    invalid: tuple[str, ...] = ()


class DefinitionStore(Protocol):
    def version(self) -> int:
        """Moves on every write; 0 for an empty store."""
        ...

    def snapshot(self) -> Snapshot: ...

    def get(self, key: str) -> ExperimentDefinition | None:
        """The stored definition (InvalidDefinition if it no longer validates)."""
        ...

    def put(self, definition: ExperimentDefinition) -> None:
        """Create or replace the definition with this key."""
        ...

    def add_missing(self, definitions: Sequence[ExperimentDefinition]) -> list[str]:
        """Store each definition whose key is absent (never overwrite); the keys added."""
        ...


class RedisDefinitionStore:
    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._client = client
        self._hash = definitions_key(namespace)
        self._version = version_key(namespace)

    def version(self) -> int:
        return int(self._client.get(self._version) or 0)

    def snapshot(self) -> Snapshot:
        # One MULTI: the hash and the version it goes with, read atomically.
        pipe = self._client.pipeline(transaction=True)
        pipe.get(self._version)
        pipe.hgetall(self._hash)
        version, stored = pipe.execute()
        return parse_snapshot(int(version or 0), stored.items())

    def get(self, key: str) -> ExperimentDefinition | None:
        raw = self._client.hget(self._hash, key)
        return None if raw is None else parse_definition_json(raw)

    def put(self, definition: ExperimentDefinition) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._hash, definition.key, definition.model_dump_json())
        pipe.incr(self._version)
        pipe.execute()

    def add_missing(self, definitions: Sequence[ExperimentDefinition]) -> list[str]:
        if not definitions:
            return []
        pipe = self._client.pipeline(transaction=True)
        for definition in definitions:
            pipe.hsetnx(self._hash, definition.key, definition.model_dump_json())
        added = [d.key for d, new in zip(definitions, pipe.execute(), strict=True) if new]
        if added:
            self._client.incr(self._version)
        return added


def parse_snapshot(version: int, stored: Iterable[tuple[bytes | str, bytes | str]]) -> Snapshot:
    definitions, invalid = [], []
    for key, raw in stored:
        name = key.decode() if isinstance(key, bytes) else key
        try:
            definitions.append(parse_definition_json(raw))
        except InvalidDefinition as exc:
            logger.warning("stored definition does not validate; left out",
                           extra={"experiment": name, "error": str(exc)})
            invalid.append(name)
    return Snapshot(version, tuple(sorted(definitions, key=lambda d: d.key)),
                    tuple(sorted(invalid)))


def parse_definition_json(raw: bytes | str) -> ExperimentDefinition:
    try:
        return parse_definition(json.loads(raw))
    except ValueError as exc:  # JSONDecodeError and InvalidDefinition are both ValueErrors
        raise InvalidDefinition(str(exc)) from exc


class InMemoryDefinitionStore:
    """The same contract in a dict, for unit tests; `unavailable` simulates an outage."""

    def __init__(self, definitions: Iterable[ExperimentDefinition] = ()) -> None:
        self._definitions = {d.key: d for d in definitions}
        self._version = 1 if self._definitions else 0
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise redis.ConnectionError("store unavailable (simulated)")

    def version(self) -> int:
        self._check()
        return self._version

    def snapshot(self) -> Snapshot:
        self._check()
        return Snapshot(self._version, tuple(sorted(self._definitions.values(),
                                                    key=lambda d: d.key)))

    def get(self, key: str) -> ExperimentDefinition | None:
        self._check()
        return self._definitions.get(key)

    def put(self, definition: ExperimentDefinition) -> None:
        self._check()
        self._definitions[definition.key] = definition
        self._version += 1

    def add_missing(self, definitions: Sequence[ExperimentDefinition]) -> list[str]:
        self._check()
        added = [d.key for d in definitions if d.key not in self._definitions]
        for definition in definitions:
            self._definitions.setdefault(definition.key, definition)
        self._version += 1 if added else 0
        return added
