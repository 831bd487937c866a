"""The feature store contract, one suite run against every store: memory, Redis, Redis Cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureStatus,
    FeatureStore,
    FeatureType,
    FeatureView,
    FeatureWrite,
    InMemoryFeatureStore,
    InvalidEntity,
    InvalidFeatureValue,
    RedisFeatureStore,
    UnknownFeature,
    WriteOutcome,
)
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration

CARD, MERCHANT = Entity("card"), Entity("merchant")
PROFILE = FeatureView("card_profile", CARD, (
    Feature("avg_amount", FeatureType.FLOAT64),
    Feature("tx_count", FeatureType.INT64),
    Feature("home_country", FeatureType.STRING, default="unknown"),
    Feature("is_premium", FeatureType.BOOL),
    Feature("embedding", FeatureType.FLOAT_VECTOR, dim=4),
), ttl=timedelta(days=1))
VELOCITY = FeatureView("card_velocity", CARD, (
    Feature("tx_1h", FeatureType.INT64),
    Feature("amount_1h", FeatureType.FLOAT64, default=-1.0),
), ttl=timedelta(hours=1))
MERCHANT_RISK = FeatureView("merchant_risk", MERCHANT, (
    Feature("chargeback_rate", FeatureType.FLOAT64),
), ttl=timedelta(days=7))
TTL = timedelta(milliseconds=600)  # short enough to sleep through on real Redis
SESSION = FeatureView("card_session", CARD, (Feature("clicks", FeatureType.INT64),), ttl=TTL)
CATALOG = FeatureCatalog([PROFILE, VELOCITY, MERCHANT_RISK, SESSION])

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    store: FeatureStore
    wait: Callable[[float], None]  # lets time pass: a fake clock in memory, a real sleep on Redis


@pytest.fixture(params=["memory", "redis", "redis_cluster"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()
        yield Backend(InMemoryFeatureStore(CATALOG, clock=clock), clock.advance)
    elif request.param == "redis":
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield Backend(RedisFeatureStore(client, CATALOG), time.sleep)
    else:
        server: ServerProcess = request.getfixturevalue("redis_cluster_server")
        cluster = RedisCluster.from_url(server.address)
        cluster.flushall()
        yield Backend(RedisFeatureStore(cluster, CATALOG), time.sleep)
        cluster.close()


def write(view: str, entity_id: str, when: datetime, **values: object) -> FeatureWrite:
    return FeatureWrite(view, entity_id, values, when)  # type: ignore[arg-type]  # tests send bad values


def read_one(store: FeatureStore, refs: list[str], **entities: str) -> dict[str, object]:
    row = store.read([entities], refs)[0]
    return {ref: (row.values[ref], row.statuses[ref]) for ref in refs}


def test_reads_back_every_type_it_wrote(backend: Backend) -> None:
    backend.store.write_batch([write("card_profile", "c1", at(0), avg_amount=12.25, tx_count=7,
                                     home_country="PT", is_premium=True,
                                     embedding=[0.1, -2.0, 3.5, 1e-3])])

    row = backend.store.read([{"card": "c1"}], PROFILE.refs)[0]

    assert row.get("card_profile:avg_amount", float) == 12.25
    assert row.get("card_profile:tx_count", int) == 7
    assert row.get("card_profile:home_country", str) == "PT"
    assert row.get("card_profile:is_premium", bool) is True
    np.testing.assert_array_equal(row.get("card_profile:embedding", np.ndarray),
                                  np.array([0.1, -2.0, 3.5, 1e-3], dtype=np.float32))
    assert set(row.statuses.values()) == {FeatureStatus.PRESENT}


def test_unknown_entity_reads_as_typed_defaults_with_not_found_status(backend: Backend) -> None:
    row = backend.store.read([{"card": "never-seen"}], PROFILE.refs)[0]

    assert row.values["card_profile:avg_amount"] == 0.0
    assert row.values["card_profile:tx_count"] == 0
    assert row.values["card_profile:home_country"] == "unknown"  # the declared default
    assert row.values["card_profile:is_premium"] is False
    np.testing.assert_array_equal(row.values["card_profile:embedding"], np.zeros(4))
    assert set(row.statuses.values()) == {FeatureStatus.NOT_FOUND}
    assert row.missing == PROFILE.refs


def test_feature_never_written_to_an_existing_row_is_null_with_its_default(
        backend: Backend) -> None:
    backend.store.write_batch([write("card_velocity", "c1", at(0), tx_1h=3)])

    assert read_one(backend.store, VELOCITY.refs, card="c1") == {
        "card_velocity:tx_1h": (3, FeatureStatus.PRESENT),
        "card_velocity:amount_1h": (-1.0, FeatureStatus.NULL),
    }


def test_partial_write_keeps_the_other_features_of_the_row(backend: Backend) -> None:
    backend.store.write_batch([write("card_velocity", "c1", at(0), tx_1h=3, amount_1h=50.0)])
    backend.store.write_batch([write("card_velocity", "c1", at(1), tx_1h=4)])

    assert read_one(backend.store, VELOCITY.refs, card="c1") == {
        "card_velocity:tx_1h": (4, FeatureStatus.PRESENT),
        "card_velocity:amount_1h": (50.0, FeatureStatus.PRESENT),
    }


def test_older_event_never_overwrites_a_newer_value(backend: Backend) -> None:
    first = backend.store.write_batch([write("card_velocity", "c1", at(10), tx_1h=5)])
    late = backend.store.write_batch([write("card_velocity", "c1", at(9), tx_1h=1)])

    assert first.outcomes == (WriteOutcome.APPLIED,)
    assert late.outcomes == (WriteOutcome.STALE,)
    assert read_one(backend.store, ["card_velocity:tx_1h"], card="c1") == {
        "card_velocity:tx_1h": (5, FeatureStatus.PRESENT)}


def test_out_of_order_writes_in_one_batch_keep_the_newest_and_count_the_stale(
        backend: Backend) -> None:
    report = backend.store.write_batch([
        write("card_velocity", "c1", at(5), tx_1h=5),
        write("card_velocity", "c1", at(3), tx_1h=3),
        write("card_velocity", "c2", at(1), tx_1h=1),
        write("card_velocity", "c1", at(4), tx_1h=4),
    ])

    assert report.outcomes == (WriteOutcome.APPLIED, WriteOutcome.STALE, WriteOutcome.APPLIED,
                               WriteOutcome.STALE)
    assert (report.applied, report.stale) == (2, 2)
    rows = backend.store.read([{"card": "c1"}, {"card": "c2"}], ["card_velocity:tx_1h"])
    assert [row.values["card_velocity:tx_1h"] for row in rows] == [5, 1]


def test_redelivered_event_with_the_same_time_is_applied_again(backend: Backend) -> None:
    backend.store.write_batch([write("card_velocity", "c1", at(5), tx_1h=5)])

    report = backend.store.write_batch([write("card_velocity", "c1", at(5), tx_1h=5)])

    assert report.outcomes == (WriteOutcome.APPLIED,)


def test_guard_is_per_row_so_an_older_partial_write_is_stale(backend: Backend) -> None:
    backend.store.write_batch([write("card_velocity", "c1", at(5), tx_1h=5)])

    # amount_1h was never written, but the row already reflects a newer event
    report = backend.store.write_batch([write("card_velocity", "c1", at(4), amount_1h=9.0)])

    assert report.outcomes == (WriteOutcome.STALE,)
    assert read_one(backend.store, ["card_velocity:amount_1h"], card="c1") == {
        "card_velocity:amount_1h": (-1.0, FeatureStatus.NULL)}


def test_one_read_serves_many_views_of_many_entities_in_request_order(backend: Backend) -> None:
    backend.store.write_batch([
        write("card_profile", f"c{i}", at(0), avg_amount=float(i), tx_count=i) for i in range(5)
    ] + [
        write("card_velocity", f"c{i}", at(0), tx_1h=10 * i) for i in range(5)
    ] + [
        write("merchant_risk", "m1", at(0), chargeback_rate=0.02),
    ])
    refs = ["card_profile:tx_count", "merchant_risk:chargeback_rate", "card_velocity:tx_1h",
            "card_profile:avg_amount"]
    entity_rows = [{"card": f"c{i}", "merchant": "m1"} for i in (4, 0, 9, 2)]

    rows = backend.store.read(entity_rows, refs)

    assert [row.entities["card"] for row in rows] == ["c4", "c0", "c9", "c2"]
    assert [row.values["card_profile:tx_count"] for row in rows] == [4, 0, 0, 2]
    assert [row.values["card_velocity:tx_1h"] for row in rows] == [40, 0, 0, 20]
    assert [row.values["merchant_risk:chargeback_rate"] for row in rows] == [0.02] * 4
    assert [row.statuses["card_profile:avg_amount"] for row in rows] == [
        FeatureStatus.PRESENT, FeatureStatus.PRESENT, FeatureStatus.NOT_FOUND,
        FeatureStatus.PRESENT]


@pytest.mark.parametrize(("bad", "error"), [
    (write("card_profile", "c2", at(0), tx_count="7"), InvalidFeatureValue),
    (write("card_profile", "c2", at(0), tx_count=True), InvalidFeatureValue),
    (write("card_profile", "c2", at(0), embedding=[1.0, 2.0]), InvalidFeatureValue),
    (write("card_profile", "c2", at(0), colour="red"), UnknownFeature),
    (write("card_colour", "c2", at(0), tx_count=1), UnknownFeature),
    (write("card_profile", "c\n2", at(0), tx_count=1), InvalidEntity),
    (write("card_profile", "c2", datetime(2025, 3, 1), tx_count=1), InvalidFeatureValue),
    (write("card_profile", "c2", at(0)), InvalidFeatureValue),
])
def test_an_invalid_write_rejects_the_whole_batch_before_anything_is_written(
        backend: Backend, bad: FeatureWrite, error: type[Exception]) -> None:
    good = write("card_profile", "c1", at(0), tx_count=1)

    with pytest.raises(error):
        backend.store.write_batch([good, bad])

    assert read_one(backend.store, ["card_profile:tx_count"], card="c1") == {
        "card_profile:tx_count": (0, FeatureStatus.NOT_FOUND)}


def test_a_read_refuses_unknown_references_and_rows_without_the_entity(backend: Backend) -> None:
    with pytest.raises(UnknownFeature):
        backend.store.read([{"card": "c1"}], ["card_profile:colour"])
    with pytest.raises(UnknownFeature):
        backend.store.read([{"card": "c1"}], ["avg_amount"])
    with pytest.raises(InvalidEntity):
        backend.store.read([{"card": "c1"}], ["merchant_risk:chargeback_rate"])


def test_empty_batches_and_empty_reads_are_answered_without_error(backend: Backend) -> None:
    assert backend.store.write_batch([]).outcomes == ()
    assert backend.store.read([], PROFILE.refs) == []
    assert backend.store.read([{"card": "c1"}], [])[0].values == {}


def test_row_expires_after_its_view_ttl(backend: Backend) -> None:
    backend.store.write_batch([write("card_session", "c1", at(0), clicks=3)])
    assert read_one(backend.store, ["card_session:clicks"], card="c1") == {
        "card_session:clicks": (3, FeatureStatus.PRESENT)}

    backend.wait(TTL.total_seconds() + 0.2)

    assert read_one(backend.store, ["card_session:clicks"], card="c1") == {
        "card_session:clicks": (0, FeatureStatus.NOT_FOUND)}


def test_each_applied_write_restarts_the_ttl(backend: Backend) -> None:
    backend.store.write_batch([write("card_session", "c1", at(0), clicks=1)])
    backend.wait(0.4)
    backend.store.write_batch([write("card_session", "c1", at(1), clicks=2)])
    backend.wait(0.4)  # 0.8 s after the first write, 0.4 s after the second

    assert read_one(backend.store, ["card_session:clicks"], card="c1") == {
        "card_session:clicks": (2, FeatureStatus.PRESENT)}


def test_a_stale_write_does_not_extend_the_ttl(backend: Backend) -> None:
    backend.store.write_batch([write("card_session", "c1", at(5), clicks=5)])
    backend.wait(0.4)
    assert backend.store.write_batch([write("card_session", "c1", at(4), clicks=4)]).stale == 1
    backend.wait(0.4)

    assert read_one(backend.store, ["card_session:clicks"], card="c1") == {
        "card_session:clicks": (0, FeatureStatus.NOT_FOUND)}
