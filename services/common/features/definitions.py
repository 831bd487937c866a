"""What the platform's features are: entities, typed features, and feature views with a TTL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from services.common.features.values import FeatureType, FeatureValue, coerce, zero
from services.common.ids import InvalidId, check_id, hash_tag

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # no ':' (reference separator), no '_ts' (row field)


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME.pattern}")


class InvalidEntity(ValueError):
    """An entity id that cannot be stored, or an entity row without an id a view needs."""


class UnknownFeature(LookupError):
    """A view or feature the catalog does not declare (a caller bug, never retried)."""


def check_entity_id(entity_id: str) -> str:
    """An entity id the store can key on: any opaque id (keys escape it, services/common/ids.py)."""
    try:
        return check_id(entity_id)
    except InvalidId as exc:
        raise InvalidEntity(f"entity {exc}") from None


def entity_tag(entity_id: str) -> str:
    """The checked id's Redis Cluster hash tag, `{<escaped id>}`: what every key of it holds."""
    return hash_tag(check_entity_id(entity_id))


def row_key(namespace: str, view: str, entity_id: str) -> str:
    """`<namespace>:<view>:{<entity_id>}`, a row's key (spec: docs/feature-store.md): the hash tag
    puts all rows of an entity in one slot (the id escaped, services/common/ids.py, so no id
    cuts its tag short)."""
    return f"{namespace}:{view}:{hash_tag(entity_id)}"


@dataclass(frozen=True)
class Entity:
    """The thing features describe (a user, a card); its name is the key of an entity row."""

    name: str
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name)


@dataclass(frozen=True)
class Feature:
    """One typed value of a view. A read of a missing value returns `default_value`."""

    name: str
    dtype: FeatureType
    default: FeatureValue | None = field(default=None, compare=False)
    dim: int = 0  # the length of a FLOAT_VECTOR; 0 for scalars

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if (self.dtype is FeatureType.FLOAT_VECTOR) != (self.dim > 0):
            raise ValueError(f"feature {self.name!r}: dim > 0 is required for vectors only")
        _ = self.default_value  # a default of the wrong type fails here, not at the first miss

    @cached_property
    def default_value(self) -> FeatureValue:
        if self.default is None:
            return zero(self.dtype, self.dim)
        return coerce(self.dtype, self.default, self.dim)


@dataclass(frozen=True)
class FeatureView:
    """Features of one entity written and expiring together: one Redis hash per entity.

    A write applies to the whole row or not at all (the event-time guard is per row), so put
    features that the same events update into the same view.
    """

    name: str
    entity: Entity
    features: tuple[Feature, ...]
    ttl: timedelta

    def __post_init__(self) -> None:
        _check_name("view", self.name)
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"view {self.name!r} needs features with distinct names")
        if self.ttl < timedelta(milliseconds=1):
            raise ValueError(f"view {self.name!r} needs a TTL of at least 1 ms")

    @cached_property
    def _by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    def feature(self, name: str) -> Feature:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownFeature(f"view {self.name!r} has no feature {name!r}") from None

    @property
    def refs(self) -> list[str]:
        """References to every feature of the view, as reads take them: "view:feature"."""
        return [f"{self.name}:{f.name}" for f in self.features]
