"""A/B counters on real Redis: scripted exposures, impressions and clicks, in any order, twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import redis

from services.common.bus.envelope import Event
from services.designs.experiments.counts import (
    experiment_counts,
    experiment_timeline,
)
from services.designs.experiments.tallies import (
    LATENCY_QUANTILE,
    Quantile,
    VariationCounts,
    quantile_ranks,
)
from services.stream.experiments import ExperimentEventsHandler

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 7, 20, 0, tzinfo=UTC)
EXPERIMENT = "ranker-v2"
NOTHING = VariationCounts(exposed=0, converted=0, impressions=0, clicks=0)
_ids = itertools.count()


def exposure(unit: str, variation: str, at: datetime = T0) -> Event:
    return Event(id=f"x{next(_ids)}", type="exposure", source="experiments", time=at,
                 data={"experiment": EXPERIMENT, "variation": variation, "unit_id": unit})


def impression(user: str, request_id: str, variation: str | None, at: datetime = T0) -> Event:
    return Event(id=f"i{next(_ids)}", type="impression", source="recommender", time=at,
                 data={"user_id": user, "content_ids": ["t1", "t2"], "request_id": request_id,
                       "experiment": EXPERIMENT if variation else None,
                       "variation": variation})


def click(user: str, request_id: str | None, at: datetime = T0) -> Event:
    return Event(id=f"c{next(_ids)}", type="click", source="ingest", time=at,
                 data={"user_id": user, "content_id": "t1", "position": 0,
                       "request_id": request_id})


def consume(client: redis.Redis, *events: Event, batch: int = 100) -> None:
    handler = ExperimentEventsHandler(client)
    for start in range(0, len(events), batch):
        for event in events[start:start + batch]:
            handler.handle(event)
        handler.flush()


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_an_exposure_then_a_click_is_a_conversion(redis_client: redis.Redis) -> None:
    consume(redis_client, exposure("u1", "treatment"), click("u1", None, at=later(5)))

    assert experiment_counts(redis_client, EXPERIMENT) == {
        "treatment": VariationCounts(exposed=1, converted=1, impressions=0, clicks=0)}


def test_a_click_before_the_exposure_does_not_convert(redis_client: redis.Redis) -> None:
    consume(redis_client, click("u1", None, at=later(-5)), exposure("u1", "treatment"))

    assert experiment_counts(redis_client, EXPERIMENT)["treatment"].converted == 0


def test_a_click_without_any_exposure_counts_nowhere(redis_client: redis.Redis) -> None:
    consume(redis_client, exposure("u1", "control"), click("u2", None, at=later(5)))

    assert experiment_counts(redis_client, EXPERIMENT) == {
        "control": VariationCounts(exposed=1, converted=0, impressions=0, clicks=0)}


def test_a_unit_exposed_twice_is_counted_once(redis_client: redis.Redis) -> None:
    consume(redis_client, exposure("u1", "control"), exposure("u1", "control", at=later(60)),
            exposure("u2", "control"))

    assert experiment_counts(redis_client, EXPERIMENT)["control"].exposed == 2


def test_a_click_handled_before_its_exposure_still_converts(redis_client: redis.Redis) -> None:
    # Different topics: the click may be consumed first though it happened after the exposure.
    consume(redis_client, click("u1", None, at=later(5)), exposure("u1", "treatment"))

    assert experiment_counts(redis_client, EXPERIMENT)["treatment"].converted == 1


def test_clicks_count_for_the_variation_of_the_list_they_were_on(
        redis_client: redis.Redis) -> None:
    consume(redis_client,
            exposure("u1", "control"), exposure("u2", "treatment"),
            impression("u1", "r1", "control"), impression("u2", "r2", "treatment"),
            impression("u2", "r3", "treatment"), impression("u3", "r4", None),
            click("u2", "r2", at=later(1)), click("u2", "r3", at=later(2)),
            click("u3", "r4", at=later(3)))

    assert experiment_counts(redis_client, EXPERIMENT) == {
        "control": VariationCounts(exposed=1, converted=0, impressions=1, clicks=0),
        "treatment": VariationCounts(exposed=1, converted=1, impressions=2, clicks=2),
    }


def test_a_click_handled_before_its_impression_is_counted_when_the_impression_arrives(
        redis_client: redis.Redis) -> None:
    consume(redis_client, click("u1", "r1", at=later(1)))
    assert experiment_counts(redis_client, EXPERIMENT) == {}

    consume(redis_client, impression("u1", "r1", "treatment"))

    assert experiment_counts(redis_client, EXPERIMENT)["treatment"].clicks == 1


def test_redelivering_every_event_changes_no_counter(redis_client: redis.Redis) -> None:
    events = [exposure("u1", "control"), exposure("u2", "treatment"),
              impression("u1", "r1", "control"), impression("u2", "r2", "treatment"),
              click("u1", "r1", at=later(1)), click("u2", "r2", at=later(2)),
              click("u2", "r2", at=later(3))]
    consume(redis_client, *events)
    once = experiment_counts(redis_client, EXPERIMENT)

    consume(redis_client, *events, *reversed(events), batch=3)

    assert experiment_counts(redis_client, EXPERIMENT) == once
    assert once["treatment"] == VariationCounts(exposed=1, converted=1, impressions=1, clicks=2)


def test_an_experiment_nobody_was_exposed_to_has_no_variations(redis_client: redis.Redis) -> None:
    assert experiment_counts(redis_client, "never-started") == {}


def test_counters_live_under_the_experiments_hash_tag(redis_client: redis.Redis) -> None:
    consume(redis_client, exposure("u1", "control"), impression("u1", "r1", "control"),
            click("u1", "r1", at=later(1)))

    assert sorted(redis_client.keys("fs:exp_*:{ranker-v2}*")) == [
        b"fs:exp_clicks:{ranker-v2}:control", b"fs:exp_conversions:{ranker-v2}:control",
        b"fs:exp_exposures:{ranker-v2}:control", b"fs:exp_impressions:{ranker-v2}:control",
        b"fs:exp_variations:{ranker-v2}"]
    assert redis_client.hget("fs:exp_unit:{u1}", "exp:ranker-v2") == (
        f"{int(T0.timestamp() * 1000)}|control".encode())
    assert 0 < redis_client.pttl("fs:rec_request:{r1}") <= 86_400_000


def ms(at: datetime) -> float:
    return float(int(at.timestamp() * 1000))


def test_units_are_scored_by_first_exposure_and_by_the_click_that_converted_them(
        redis_client: redis.Redis) -> None:
    consume(redis_client, exposure("u1", "control", at=later(10)), exposure("u1", "control"),
            click("u1", None, at=later(30)), click("u1", None, at=later(20)),
            exposure("u2", "control", at=later(5)))

    assert redis_client.zrange("fs:exp_exposures:{ranker-v2}:control", 0, -1,
                               withscores=True) == [(b"u1", ms(T0)), (b"u2", ms(later(5)))]
    assert redis_client.zrange("fs:exp_conversions:{ranker-v2}:control", 0, -1,
                               withscores=True) == [(b"u1", ms(later(20)))]


def test_a_click_handled_before_its_exposure_converts_at_that_click(
        redis_client: redis.Redis) -> None:
    consume(redis_client, click("u1", None, at=later(7)), exposure("u1", "treatment"))

    assert redis_client.zscore("fs:exp_conversions:{ranker-v2}:treatment", "u1") == ms(later(7))


def test_the_timeline_counts_units_exposed_and_converted_up_to_each_instant(
        redis_client: redis.Redis) -> None:
    consume(redis_client,
            exposure("u1", "control"), exposure("u2", "control", at=later(10)),
            exposure("u3", "treatment", at=later(5)), click("u1", None, at=later(20)),
            click("u3", None, at=later(6)))

    timeline = experiment_timeline(redis_client, EXPERIMENT, points=5)

    assert timeline.times_ms == tuple(int(ms(later(m))) for m in (0, 5, 10, 15, 20))
    assert timeline.exposed == {"control": (1, 1, 2, 2, 2), "treatment": (0, 1, 1, 1, 1)}
    assert timeline.converted == {"control": (0, 0, 0, 0, 1), "treatment": (0, 0, 1, 1, 1)}


def test_redelivery_moves_no_point_of_the_timeline(redis_client: redis.Redis) -> None:
    events = [exposure("u1", "control"), click("u1", None, at=later(3)),
              exposure("u2", "treatment", at=later(1)), click("u2", None, at=later(9))]
    consume(redis_client, *events)
    once = experiment_timeline(redis_client, EXPERIMENT, points=10)

    consume(redis_client, *reversed(events), *events, batch=1)

    assert experiment_timeline(redis_client, EXPERIMENT, points=10) == once


def test_an_experiment_without_exposures_has_an_empty_timeline(
        redis_client: redis.Redis) -> None:
    assert experiment_timeline(redis_client, "never-started").times_ms == ()


def test_empty_lists_and_latencies_are_counted_once_per_request_and_read_as_a_p99(
        redis_client: redis.Redis) -> None:
    times = [float(t) for t in range(1, 1001)]    # 1..1000 ms, one list each
    shown = [Event(id=f"i{next(_ids)}", type="impression", source="recommender", time=T0,
                   data={"user_id": f"u{i}", "content_ids": [] if i % 10 == 0 else ["t1"],
                         "request_id": f"r{i}", "experiment": EXPERIMENT,
                         "variation": "treatment", "latency_ms": t})
             for i, t in enumerate(times)]
    consume(redis_client, *shown, *shown)         # redelivered: nothing changes

    counts = experiment_counts(redis_client, EXPERIMENT)["treatment"]
    low, point, high = quantile_ranks(len(times), LATENCY_QUANTILE)
    assert (counts.impressions, counts.empty) == (1000, 100)
    assert counts.latency == Quantile(LATENCY_QUANTILE, 1000, times[point], times[low],
                                      times[high])
    assert counts.latency.value == 990.0          # the 990th of 1,000 sorted times
