"""The in-process definitions: refreshed when the store's version moves, last good set kept."""

from __future__ import annotations

import time
from typing import Any

from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import (
    ExperimentDefinition,
    InvalidDefinition,
    parse_definition,
)
from services.designs.experiments.store import InMemoryDefinitionStore, Snapshot


def definition(key: str = "rec-algorithm", **changes: Any) -> ExperimentDefinition:
    return parse_definition({"key": key, "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}], **changes})


def test_start_loads_the_store_and_serves_from_memory() -> None:
    store = InMemoryDefinitionStore([definition(), definition("other", status="draft")])
    cache = DefinitionCache(store)
    cache.refresh()

    assert cache.get("rec-algorithm") == definition()
    assert [d.key for d in cache.running()] == ["rec-algorithm"]
    assert (cache.source, cache.version) == ("store", 1)


def test_a_refresh_reads_definitions_only_when_the_version_moved() -> None:
    store = InMemoryDefinitionStore([definition()])
    outcomes: list[str] = []
    cache = DefinitionCache(store, on_refresh=outcomes.append)

    cache.refresh()
    cache.refresh()
    store.put(definition(coverage=0.5))
    cache.refresh()

    assert outcomes == ["loaded", "unchanged", "loaded"]
    definition_now = cache.get("rec-algorithm")
    assert definition_now is not None and definition_now.coverage == 0.5


def test_when_the_store_is_down_the_last_good_set_stays() -> None:
    store = InMemoryDefinitionStore([definition()])
    cache = DefinitionCache(store)
    cache.refresh()

    store.unavailable = True
    assert cache.refresh() == "failed"

    assert cache.get("rec-algorithm") == definition()
    assert cache.version == 1


def test_before_the_store_ever_answers_the_fallback_is_served() -> None:
    store = InMemoryDefinitionStore()
    store.unavailable = True
    cache = DefinitionCache(store, fallback=[definition()])

    assert cache.refresh() == "failed"
    assert (cache.source, cache.version) == ("fallback", None)
    assert cache.get("rec-algorithm") == definition()


def test_seed_definitions_are_stored_once_the_store_answers_and_never_overwrite() -> None:
    store = InMemoryDefinitionStore([definition(coverage=0.3)])  # changed through the API
    store.unavailable = True
    cache = DefinitionCache(store, seed=[definition(), definition("new-one")])
    cache.refresh()

    store.unavailable = False
    cache.refresh()

    stored = {d.key: d.coverage for d in store.snapshot().definitions}
    assert stored == {"rec-algorithm": 0.3, "new-one": 1.0}
    assert [d.key for d in cache.all()] == ["new-one", "rec-algorithm"]


class StoreWithAnInvalidEntry(InMemoryDefinitionStore):
    """As Redis after someone wrote a definition around the API that no longer validates."""

    invalid = False

    def snapshot(self) -> Snapshot:
        snapshot = super().snapshot()
        if not self.invalid:
            return snapshot
        return Snapshot(snapshot.version + 1, tuple(
            d for d in snapshot.definitions if d.key != "rec-algorithm"), ("rec-algorithm",))

    def version(self) -> int:
        return super().version() + (1 if self.invalid else 0)


def test_a_stored_definition_that_stops_validating_keeps_its_last_good_version() -> None:
    store = StoreWithAnInvalidEntry([definition(), definition("other")])
    cache = DefinitionCache(store)
    cache.refresh()

    store.invalid = True
    cache.refresh()

    assert cache.get("rec-algorithm") == definition()
    assert cache.version == 2


def test_the_thread_refreshes_every_interval_and_stops_on_close() -> None:
    store = InMemoryDefinitionStore([definition()])
    cache = DefinitionCache(store, interval_s=0.01)
    cache.start()
    try:
        store.put(definition(coverage=0.2))
        deadline = time.monotonic() + 2
        while cache.version != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.version == 2
    finally:
        cache.close()
    assert not cache._thread.is_alive()


def test_a_store_error_never_escapes_a_refresh() -> None:
    class Broken(InMemoryDefinitionStore):
        def version(self) -> int:
            raise InvalidDefinition("anything at all")

    assert DefinitionCache(Broken()).refresh() == "failed"
