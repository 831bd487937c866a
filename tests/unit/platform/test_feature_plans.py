"""Planning a read and building typed rows, shared by every store and free of I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureRow,
    FeatureStatus,
    FeatureType,
    FeatureView,
    FeatureWrite,
    InvalidFeatureValue,
)
from services.common.features.plans import encode_writes, plan_read
from services.common.times import epoch_ms

USER, ITEM = Entity("user"), Entity("item")
PROFILE = FeatureView("user_profile", USER, (
    Feature("age", FeatureType.INT64), Feature("country", FeatureType.STRING)),
    timedelta(days=1))
HISTORY = FeatureView("user_history", USER, (Feature("watched", FeatureType.INT64),),
                      timedelta(days=1))
ITEM_STATS = FeatureView("item_stats", ITEM, (Feature("ctr", FeatureType.FLOAT64),),
                         timedelta(days=1))
CATALOG = FeatureCatalog([PROFILE, HISTORY, ITEM_STATS])


def test_a_read_needs_one_lookup_per_entity_row_and_view() -> None:
    rows = [{"user": "u1", "item": "i1"}, {"user": "u2", "item": "i1"}]
    refs = ["user_profile:age", "item_stats:ctr", "user_profile:country", "user_history:watched"]

    plan = plan_read(CATALOG, rows, refs)

    assert [(lookup.view.name, lookup.entity_id, lookup.refs) for lookup in plan.lookups] == [
        ("user_profile", "u1", ("user_profile:age", "user_profile:country")),
        ("item_stats", "i1", ("item_stats:ctr",)),
        ("user_history", "u1", ("user_history:watched",)),
        ("user_profile", "u2", ("user_profile:age", "user_profile:country")),
        ("item_stats", "i1", ("item_stats:ctr",)),
        ("user_history", "u2", ("user_history:watched",)),
    ]


def test_a_reference_asked_twice_is_fetched_once() -> None:
    plan = plan_read(CATALOG, [{"user": "u1"}], ["user_profile:age", "user_profile:age"])

    assert plan.lookups[0].refs == ("user_profile:age",)


def test_fetched_bytes_become_values_with_present_null_and_not_found_statuses() -> None:
    plan = plan_read(CATALOG, [{"user": "u1"}], ["user_profile:age", "user_profile:country",
                                                 "user_history:watched"])

    [row] = plan.assemble([[b"31", None], None])

    assert row.values == {"user_profile:age": 31, "user_profile:country": "",
                          "user_history:watched": 0}
    assert row.statuses == {"user_profile:age": FeatureStatus.PRESENT,
                            "user_profile:country": FeatureStatus.NULL,
                            "user_history:watched": FeatureStatus.NOT_FOUND}
    assert row.missing == ["user_profile:country", "user_history:watched"]


def test_a_row_value_is_handed_out_only_as_the_type_it_has() -> None:
    row = FeatureRow({"user": "u1"}, {"user_profile:age": 31},
                     {"user_profile:age": FeatureStatus.PRESENT})

    assert row.get("user_profile:age", int) == 31
    with pytest.raises(TypeError, match="not a str"):
        row.get("user_profile:age", str)


def test_event_time_becomes_epoch_milliseconds_whatever_its_time_zone() -> None:
    utc = datetime(2025, 3, 1, 12, 0, 0, 123_999, tzinfo=UTC)
    one_hour_east = utc.astimezone(timezone(timedelta(hours=1)))

    assert epoch_ms(utc) == epoch_ms(one_hour_east) == 1_740_830_400_123


def test_a_naive_event_time_is_refused_and_a_write_with_one_is_an_invalid_value() -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone"):
        epoch_ms(naive)
    with pytest.raises(InvalidFeatureValue, match="timezone"):
        encode_writes(CATALOG, [FeatureWrite("user_profile", "u1", {"age": 30}, naive)])
