"""Pure steps every store shares: check and encode a write batch, plan a read, build typed rows.

Adapters only move bytes (Redis: one pipeline; memory: a dict), so defaults, statuses and
validation behave the same in every store by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.features.catalog import FeatureCatalog
from services.common.features.definitions import (
    Feature,
    FeatureView,
    InvalidEntity,
    check_entity_id,
)
from services.common.features.ports import FeatureRow, FeatureStatus, FeatureWrite
from services.common.features.values import (
    FeatureValue,
    InvalidFeatureValue,
    coerce,
    decode,
    encode,
)
from services.common.times import epoch_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

Fetched = Sequence[bytes | None] | None
"""What an adapter found for one lookup: None when there is no row, else one raw value per feature
of the lookup (None where the row lacks that feature)."""


@dataclass(frozen=True)
class EncodedWrite:
    """A write checked against its view, values as the bytes the store keeps."""

    view: FeatureView
    entity_id: str
    event_time_ms: int
    fields: Mapping[str, bytes]

    @property
    def ttl_ms(self) -> int:
        return self.view.ttl // _MS


def encode_writes(catalog: FeatureCatalog, writes: Sequence[FeatureWrite]) -> list[EncodedWrite]:
    """The batch as bytes; a single bad write raises before the adapter sends anything."""
    return [_encode(catalog, write) for write in writes]


def _encode(catalog: FeatureCatalog, write: FeatureWrite) -> EncodedWrite:
    view = catalog.view(write.view)
    if not write.values:
        raise InvalidFeatureValue(f"a write to {view.name!r} needs at least one value")
    fields = {}
    for name, value in write.values.items():
        feature = view.feature(name)
        fields[name] = encode(feature.dtype, coerce(feature.dtype, value, feature.dim))
    try:
        event_time_ms = epoch_ms(write.event_time)
    except ValueError as exc:  # the store's callers handle its own error for a bad write
        raise InvalidFeatureValue(str(exc)) from exc
    return EncodedWrite(view, check_entity_id(write.entity_id), event_time_ms, fields)


@dataclass(frozen=True)
class Lookup:
    """One row to fetch: the requested features of one view for one entity."""

    view: FeatureView
    entity_id: str
    refs: tuple[str, ...]
    features: tuple[Feature, ...]


@dataclass(frozen=True)
class ReadPlan:
    """What to fetch for a read, and how to turn the fetched bytes into rows."""

    entity_rows: tuple[Mapping[str, str], ...]
    lookups: tuple[Lookup, ...]  # row by row, one per view the refs name
    lookups_per_row: int

    def assemble(self, fetched: Sequence[Fetched]) -> list[FeatureRow]:
        """Typed rows from what the adapter fetched, one entry per lookup in plan order."""
        if len(fetched) != len(self.lookups):
            raise ValueError(f"{len(fetched)} fetched rows for {len(self.lookups)} lookups")
        rows = []
        for index, entities in enumerate(self.entity_rows):
            values: dict[str, FeatureValue] = {}
            statuses: dict[str, FeatureStatus] = {}
            start = index * self.lookups_per_row
            for position in range(start, start + self.lookups_per_row):
                _fill(self.lookups[position], fetched[position], values, statuses)
            rows.append(FeatureRow(entities, values, statuses))
        return rows


def _fill(lookup: Lookup, raw: Fetched, values: dict[str, FeatureValue],
          statuses: dict[str, FeatureStatus]) -> None:
    if raw is None:
        for ref, feature in zip(lookup.refs, lookup.features, strict=True):
            values[ref], statuses[ref] = feature.default_value, FeatureStatus.NOT_FOUND
        return
    for ref, feature, cell in zip(lookup.refs, lookup.features, raw, strict=True):
        if cell is None:
            values[ref], statuses[ref] = feature.default_value, FeatureStatus.NULL
        else:
            values[ref], statuses[ref] = decode(feature.dtype, cell), FeatureStatus.PRESENT


def plan_read(catalog: FeatureCatalog, entity_rows: Sequence[Mapping[str, str]],
              refs: Sequence[str]) -> ReadPlan:
    """Group the refs by view, then one lookup per (entity row, view): one HMGET each."""
    groups: dict[str, tuple[FeatureView, list[str], list[Feature]]] = {}
    for ref in dict.fromkeys(refs):  # de-duplicated, in the caller's order
        view, feature = catalog.resolve(ref)
        _, view_refs, features = groups.setdefault(view.name, (view, [], []))
        view_refs.append(ref)
        features.append(feature)
    frozen = [(view, tuple(view_refs), tuple(features)) for view, view_refs, features in
              groups.values()]
    lookups = tuple(
        Lookup(view, _entity_id(entities, view), view_refs, features)
        for entities in entity_rows
        for view, view_refs, features in frozen
    )
    return ReadPlan(tuple(entity_rows), lookups, len(frozen))


def _entity_id(entities: Mapping[str, str], view: FeatureView) -> str:
    if view.entity.name not in entities:
        raise InvalidEntity(f"entity row {dict(entities)} has no {view.entity.name!r} id, "
                            f"which view {view.name!r} needs")
    return check_entity_id(entities[view.entity.name])
