"""The feature store port: what every store promises, whatever the technology behind it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from services.common.features.values import FeatureInput, FeatureValue

T = TypeVar("T")


class FeatureStoreUnavailable(ConnectionError):
    """The store did not answer (connection refused, timeout, cluster down, out of memory).

    A ConnectionError, so consumers retry it as transient; services catch it to serve a
    degraded answer (defaults, rules only) instead of failing the request.
    """


@dataclass(frozen=True)
class FeatureWrite:
    """New values for some or all features of one view's row, as of `event_time` (tz-aware)."""

    view: str
    entity_id: str
    values: Mapping[str, FeatureInput]
    event_time: datetime


class WriteOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the row holds a newer event; nothing was changed


@dataclass(frozen=True)
class WriteReport:
    outcomes: tuple[WriteOutcome, ...]  # one per write, in the order given

    @property
    def applied(self) -> int:
        return self.outcomes.count(WriteOutcome.APPLIED)

    @property
    def stale(self) -> int:
        return self.outcomes.count(WriteOutcome.STALE)


class FeatureStatus(StrEnum):
    PRESENT = "present"
    NOT_FOUND = "not_found"  # no row for this entity in the view: never written, or expired
    NULL = "null"  # the row exists but this feature was never written to it


@dataclass(frozen=True)
class FeatureRow:
    """The features read for one entity row; a missing value is its feature's typed default."""

    entities: Mapping[str, str]
    values: Mapping[str, FeatureValue]
    statuses: Mapping[str, FeatureStatus]

    def get(self, ref: str, kind: type[T]) -> T:
        """The value as the type the caller expects: `row.get("card_profile:avg_amount", float)`."""
        value = self.values[ref]
        if not isinstance(value, kind):
            raise TypeError(f"{ref} is a {type(value).__name__}, not a {kind.__name__}")
        return value

    @property
    def missing(self) -> list[str]:
        """References served from defaults: worth a metric, a spike means a broken pipeline."""
        return [ref for ref, status in self.statuses.items() if status is not FeatureStatus.PRESENT]


class FeatureStore(Protocol):
    def write_batch(self, writes: Sequence[FeatureWrite]) -> WriteReport:
        """Apply each write unless its row holds a newer event; the whole batch is checked first.

        Raises UnknownFeature or InvalidFeatureValue (nothing written) for a write that does not
        match the catalog, and FeatureStoreUnavailable when the store does not answer.
        """
        ...

    def read(self, entity_rows: Sequence[Mapping[str, str]],
             refs: Sequence[str]) -> list[FeatureRow]:
        """The referenced features for each entity row, e.g. rows [{"card": "c1"}] and refs
        ["card_profile:avg_amount"]; one result per row, in order, in one round trip.

        Raises UnknownFeature for a bad reference and FeatureStoreUnavailable when the store
        does not answer; a missing value is never an exception.
        """
        ...
