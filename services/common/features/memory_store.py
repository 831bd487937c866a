"""The feature store in a dict with an injectable clock: Redis's contract, for unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from services.common.features.catalog import FeatureCatalog
from services.common.features.plans import Fetched, encode_writes, plan_read
from services.common.features.ports import FeatureRow, FeatureWrite, WriteOutcome, WriteReport


@dataclass
class _Row:
    event_time_ms: int
    expires_at: float
    fields: dict[str, bytes] = field(default_factory=dict)


class InMemoryFeatureStore:
    """Keeps encoded bytes, not Python values, so vectors lose float32 precision as on Redis."""

    def __init__(self, catalog: FeatureCatalog,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._clock = clock  # seconds; TTLs count on it
        self._rows: dict[tuple[str, str], _Row] = {}

    def _live(self, key: tuple[str, str]) -> _Row | None:
        row = self._rows.get(key)
        if row is not None and row.expires_at <= self._clock():
            del self._rows[key]
            return None
        return row

    def write_batch(self, writes: Sequence[FeatureWrite]) -> WriteReport:
        outcomes = []
        for write in encode_writes(self._catalog, writes):
            key = (write.view.name, write.entity_id)
            row = self._live(key)
            if row is not None and row.event_time_ms > write.event_time_ms:
                outcomes.append(WriteOutcome.STALE)
                continue
            if row is None:
                row = self._rows[key] = _Row(event_time_ms=0, expires_at=0.0)
            row.event_time_ms = write.event_time_ms
            row.expires_at = self._clock() + write.ttl_ms / 1000
            row.fields.update(write.fields)
            outcomes.append(WriteOutcome.APPLIED)
        return WriteReport(tuple(outcomes))

    def read(self, entity_rows: Sequence[Mapping[str, str]],
             refs: Sequence[str]) -> list[FeatureRow]:
        plan = plan_read(self._catalog, entity_rows, refs)
        fetched: list[Fetched] = []
        for lookup in plan.lookups:
            row = self._live((lookup.view.name, lookup.entity_id))
            cells = None if row is None else [row.fields.get(f.name) for f in lookup.features]
            fetched.append(cells)
        return plan.assemble(fetched)
