"""Declaring features: names, types, defaults and TTLs are checked when the catalog is built."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureType,
    FeatureView,
    InvalidEntity,
    InvalidFeatureValue,
    UnknownFeature,
)
from services.common.features.definitions import check_entity_id

USER = Entity("user")
HOUR = timedelta(hours=1)


def view(name: str = "user_profile", *features: Feature, ttl: timedelta = HOUR) -> FeatureView:
    return FeatureView(name, USER, features or (Feature("age", FeatureType.INT64),), ttl)


@pytest.mark.parametrize("name", ["Age", "_ts", "watch:count", "", "1st", "user-vector"])
def test_names_that_would_break_keys_or_references_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        Feature(name, FeatureType.INT64)
    with pytest.raises(ValueError, match="must match"):
        view(name)
    with pytest.raises(ValueError, match="must match"):
        Entity(name)


def test_a_vector_must_declare_its_length_and_a_scalar_must_not() -> None:
    with pytest.raises(ValueError, match="dim"):
        Feature("embedding", FeatureType.FLOAT_VECTOR)
    with pytest.raises(ValueError, match="dim"):
        Feature("age", FeatureType.INT64, dim=3)


def test_a_default_of_the_wrong_type_fails_at_declaration() -> None:
    with pytest.raises(InvalidFeatureValue):
        Feature("age", FeatureType.INT64, default="unknown")


def test_the_default_value_is_the_declared_default_or_the_types_zero() -> None:
    assert Feature("rate", FeatureType.FLOAT64, default=-1).default_value == -1.0
    assert Feature("rate", FeatureType.FLOAT64).default_value == 0.0
    vector = Feature("embedding", FeatureType.FLOAT_VECTOR, dim=8).default_value
    np.testing.assert_array_equal(vector, np.zeros(8, dtype=np.float32))


def test_a_view_needs_distinct_features_and_a_positive_ttl() -> None:
    age = Feature("age", FeatureType.INT64)
    with pytest.raises(ValueError, match="distinct"):
        view("user_profile", age, age)
    with pytest.raises(ValueError, match="TTL"):
        view(ttl=timedelta(0))


def test_a_view_lists_references_to_its_features() -> None:
    profile = view("user_profile", Feature("age", FeatureType.INT64),
                   Feature("country", FeatureType.STRING))

    assert profile.refs == ["user_profile:age", "user_profile:country"]


def test_the_catalog_resolves_view_feature_references() -> None:
    profile = view()
    catalog = FeatureCatalog([profile])

    assert catalog.resolve("user_profile:age") == (profile, profile.features[0])
    assert list(catalog) == [profile]


@pytest.mark.parametrize("ref", ["user_profile:height", "user_history:age", "age", ""])
def test_the_catalog_refuses_references_it_does_not_declare(ref: str) -> None:
    with pytest.raises(UnknownFeature):
        FeatureCatalog([view()]).resolve(ref)


def test_the_catalog_refuses_a_view_declared_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        FeatureCatalog([view(), view()])


@pytest.mark.parametrize("entity_id", ["", "u\x001", "x" * 129])
def test_an_entity_id_that_is_no_opaque_id_is_refused(entity_id: str) -> None:
    with pytest.raises(InvalidEntity):
        check_entity_id(entity_id)
