"""The watch handler's handle(): what it accepts, refuses and skips, before any Redis is touched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event
from services.designs.recs.items import ItemArtifacts
from services.stream.watches import WatchFeaturesHandler

ITEMS = ItemArtifacts.build(["t1"], [[1.0]], [[1]], [0.0], [0], ("Drama",))


def handler() -> WatchFeaturesHandler:
    # Nothing listens on port 1: handle() must buffer without touching Redis.
    return WatchFeaturesHandler(redis.Redis(port=1), ITEMS)


def event(type_: str = "watch", **data: Any) -> Event:
    payload = {"user_id": "u1", "content_id": "t1", "watch_seconds": 60, "completed": True}
    return Event(id="e1", type=type_, source="test", time=datetime(2026, 9, 7, tzinfo=UTC),
                 data=payload | data)


def test_a_watch_is_buffered_without_touching_redis() -> None:
    watches = handler()

    watches.handle(event())

    assert watches.counts.unknown_titles == 0


@pytest.mark.parametrize("bad", [{"user_id": "al\x00ice"}, {"watch_seconds": -1},
                                 {"content_id": None}, {"extra": 1}])
def test_a_watch_with_invalid_data_is_poison(bad: dict[str, Any]) -> None:
    with pytest.raises(PoisonEvent, match="invalid watch data"):
        handler().handle(event(**bad))


def test_an_event_type_that_does_not_belong_on_the_topic_is_poison() -> None:
    with pytest.raises(PoisonEvent, match="transaction"):
        handler().handle(event("transaction"))


def test_ratings_share_the_topic_and_are_skipped_on_purpose() -> None:
    watches = handler()

    watches.handle(Event(id="r1", type="rating", source="test", time=datetime.now(UTC),
                         data={"user_id": "u1", "content_id": "t1", "rating": 5}))
    watches.flush()  # nothing buffered: no Redis call

    assert watches.counts.ratings_ignored == 1


def test_a_watch_of_a_title_the_model_does_not_know_is_kept_and_counted() -> None:
    watches = handler()

    watches.handle(event(content_id="t999"))

    assert watches.counts.unknown_titles == 1
