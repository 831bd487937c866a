"""Seeding replays history as events shifted to now (labels once due; MovieLens up to its split)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from services.catalog_etl.rows import read_rows
from services.catalog_etl.titles import GoodRow, validate
from services.common.bus.envelope import decode_event
from services.designs.model_features import (
    FRAUD_REACH_DAYS,
    FRAUD_RETRAIN_SPAN_DAYS,
    LAKE_DAYS_FOR_A_RETRAIN,
)
from services.designs.payloads import payload_of
from services.seeder.__main__ import say_if_short
from services.seeder.history import (
    catalog_rows,
    movielens_history,
    recent,
    transaction_history,
    transaction_messages,
    watch_messages,
)
from services.trainer.fraud_retrain import Windows, windows_complete_from
from services.trainer.pipeline import SCALES
from services.trainer.worlds.movielens import MovieLensWorld
from services.trainer.worlds.transactions import TransactionWorldConfig

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def transactions() -> pd.DataFrame:
    base = pd.Timestamp("2018-07-01 10:00:00")
    return pd.DataFrame({
        "transaction_id": ["tx1", "tx2"], "tx_datetime": [base, base + pd.Timedelta(hours=1)],
        "customer_id": ["cust1", "cust2"], "card_id": ["card1", "card2"],
        "terminal_id": ["term1", "term2"], "merchant_id": ["m1", "m2"],
        "merchant_category": ["grocery", "travel"], "amount": [10.0, 900.0],
        "currency": ["EUR", "EUR"], "transaction_type": ["purchase", "transfer"],
        "latitude": [48.0, 49.0], "longitude": [2.0, 3.0], "device_id": ["dev1", "dev2"],
        "ip_address": ["10.0.0.1", "10.0.0.2"], "is_fraud": [0, 1], "fraud_scenario": [0, 6],
        "label_time": [base + pd.Timedelta(days=2), base + pd.Timedelta(days=3)],
    })


def test_history_is_shifted_so_it_ends_now_and_every_event_is_valid() -> None:
    frame = transactions()
    shift = NOW - frame["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    messages = list(transaction_messages(frame, shift, NOW))
    events = [decode_event(m.value) for m in messages]

    assert [e.type for e in events] == ["transaction", "transaction"]  # the label is not due yet
    assert events[-1].time == NOW
    for event in events:
        payload_of(event.type, event.data)  # raises if a field is off
    assert [m.key for m in messages] == ["card1", "card2"]


def test_a_fraud_label_is_published_once_it_has_arrived() -> None:
    frame = transactions()
    shift = timedelta(days=0)
    later = datetime(2018, 7, 10, tzinfo=UTC)
    events = [decode_event(m.value) for m in transaction_messages(frame, shift, later)]

    assert [e.type for e in events] == ["transaction", "transaction", "fraud_label"]
    label = events[-1]
    assert label.data["transaction_id"] == "tx2"
    assert label.time == datetime(2018, 7, 4, 10, tzinfo=UTC)


def test_event_ids_are_stable_so_a_second_seed_is_deduplicated() -> None:
    frame = transactions()
    first = [decode_event(m.value).id for m in transaction_messages(frame, timedelta(), NOW)]
    second = [decode_event(m.value).id for m in transaction_messages(frame, timedelta(), NOW)]
    assert first == second == ["seed-tx-tx1", "seed-tx-tx2", "seed-label-tx2"]


def test_watches_become_watch_events_keyed_by_user() -> None:
    interactions = pd.DataFrame({
        "event_id": ["w1"], "user_id": ["u7"], "content_id": ["t3"],
        "timestamp": [pd.Timestamp("2026-08-05 20:00", tz="UTC")], "watch_seconds": [1800],
        "completed": [True], "rating": pd.array([pd.NA], dtype="Int8"),
    })
    [message] = list(watch_messages(interactions, timedelta(days=1)))
    event = decode_event(message.value)
    assert message.topic == "watch-events" and message.key == "u7"
    assert event.time == datetime(2026, 8, 6, 20, tzinfo=UTC)
    assert event.data == {"user_id": "u7", "content_id": "t3", "watch_seconds": 1800,
                          "completed": True}


def test_recent_keeps_the_last_days_of_history() -> None:
    frame = transactions()
    assert len(recent(frame, "tx_datetime", 1 / 48)) == 1
    assert len(recent(frame, "tx_datetime", None)) == 2


def movielens_world() -> MovieLensWorld:
    """Three users' ratings in MovieLens's shape, out of time order; a 1-day held-out future."""
    day = pd.Timestamp("1998-04-20", tz="UTC")
    interactions = pd.DataFrame({
        "event_id": ["ml100k-2", "ml100k-0", "ml100k-3", "ml100k-1"],
        "user_id": ["196", "196", "22", "186"],
        "content_id": ["302", "242", "377", "51"],
        "timestamp": [day + pd.Timedelta(hours=30), day + pd.Timedelta(hours=1),
                      day + pd.Timedelta(hours=50), day + pd.Timedelta(hours=2)],
        "rating": [3, 5, 1, 4], "completed": [False, True, False, True],
    }).astype({"timestamp": "datetime64[ns, UTC]"})
    users = pd.DataFrame({"user_id": ["196", "186", "22"], "max_maturity": [4, 4, 4]})
    titles = pd.DataFrame({
        "content_id": ["242", "302", "377", "51"],
        "release_date": pd.to_datetime(["1997-01-01", "1997-01-01", "1994-01-01",
                                        "1994-01-01"], utc=True)})
    return MovieLensWorld(users, titles, interactions, holdout_days=1)


def test_movielens_replays_only_the_ratings_before_the_trainers_split() -> None:
    world = movielens_world()
    viewing = movielens_history(world)

    assert viewing.split == datetime(1998, 4, 22, tzinfo=UTC)  # midnight after the last, - 1 d
    assert viewing.split == world.split
    assert sorted(viewing.history["event_id"]) == ["ml100k-0", "ml100k-1", "ml100k-2"]


def test_movielens_ratings_become_watches_in_time_order_shifted_to_end_at_now() -> None:
    viewing = movielens_history(movielens_world())
    shift = NOW - viewing.split

    messages = list(watch_messages(viewing.history, shift))
    events = [decode_event(m.value) for m in messages]

    assert [e.id for e in events] == ["seed-watch-ml100k-0", "seed-watch-ml100k-1",
                                      "seed-watch-ml100k-2"]
    assert [e.time for e in events] == sorted(e.time for e in events)
    # the split lands at now: the last replayed rating (30 h after 20 April) is 18 h before it
    assert events[-1].time == NOW - timedelta(hours=18)
    assert all(e.time < NOW for e in events)
    for event in events:
        payload_of(event.type, event.data)  # raises if a field is off


def test_movielens_ids_stay_strings_and_watches_carry_no_duration() -> None:
    viewing = movielens_history(movielens_world())
    messages = list(watch_messages(viewing.history, timedelta()))
    first = decode_event(messages[0].value)

    assert [m.key for m in messages] == ["196", "186", "196"]
    assert first.data == {"user_id": "196", "content_id": "242", "watch_seconds": 0,
                          "completed": True}
    assert decode_event(messages[2].value).data["completed"] is False  # rated 3: partial


def test_movielens_profiles_let_everyone_watch_everything() -> None:
    viewing = movielens_history(movielens_world())

    assert viewing.profiles == [("196", "unknown", 4), ("186", "unknown", 4), ("22", "unknown", 4)]


def test_titles_become_a_catalog_file_the_etl_accepts_with_release_dates_moved(
        tmp_path: Path) -> None:
    world = movielens_world()
    world.titles["title"] = ["Kolya (1996)", "L.A. Confidential (1997)", "Heavyweights (1994)",
                             "Legends of the Fall (1994)"]
    world.titles["genres"] = ["Comedy", "Crime|Film-Noir|Mystery|Thriller", "Children's|Comedy",
                              "Drama|Romance|War|Western"]
    shift = timedelta(days=10_000, hours=5)

    path = tmp_path / "catalog.parquet"
    catalog_rows(world.titles, shift).to_parquet(path, index=False)
    validated = list(validate(read_rows(path)))

    assert all(isinstance(row, GoodRow) for row in validated)
    titles = [row.title for row in validated if isinstance(row, GoodRow)]
    assert [t.content_id for t in titles] == ["242", "302", "377", "51"]
    assert titles[1].genres == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert titles[0].release_date == (datetime(1997, 1, 1, tzinfo=UTC) + shift).date()
    assert titles[0].maturity_rating is None  # MovieLens has none; trained rows keep level 0


def world_bounds(config: TransactionWorldConfig) -> pd.DataFrame:
    """Two transactions: the world's first second and its last (what bounds a replay)."""
    frame = transactions()
    start = pd.Timestamp(config.start_date)
    return frame.assign(tx_datetime=[start + pd.Timedelta(seconds=1),
                                     start + pd.Timedelta(days=config.n_days, seconds=-1)],
                        label_time=[start + pd.Timedelta(days=2),
                                    start + pd.Timedelta(days=config.n_days + 3)])


def test_the_dev_worlds_replay_gives_a_retrain_today_a_training_week_past_its_burn_in() -> None:
    # Every hour of a week: the whole-week shift leaves the history's end 0 to 7 days before
    # now, and the retrain's windows start at midnights; none may land in the burn-in.
    for scale in SCALES.values():
        world = world_bounds(scale.transactions)
        for hour in range(7 * 24):
            now = NOW + timedelta(hours=hour)
            times = [decode_event(m.value).time for m in transaction_history(
                world, now, LAKE_DAYS_FOR_A_RETRAIN) if m.topic == "transactions"]
            lake = pd.DataFrame({"tx_datetime": [pd.Timestamp(t).tz_localize(None)
                                                 for t in times]})
            complete_from = windows_complete_from(lake)
            assert complete_from is not None
            assert complete_from <= Windows.ending_at(now).split.train_start, now


def test_the_old_seed_of_38_days_leaves_the_retrain_no_complete_training_week() -> None:
    world = world_bounds(SCALES["default"].transactions)
    for hour in range(0, 7 * 24, 6):
        now = NOW + timedelta(hours=hour)
        times = [decode_event(m.value).time for m in transaction_history(world, now, 38)]
        first = min(pd.Timestamp(t).tz_localize(None) for t in times)
        assert first + pd.Timedelta(days=37) > Windows.ending_at(now).split.train_start


def test_the_retrain_spans_the_four_weeks_the_lake_is_sized_for() -> None:
    windows = Windows.ending_at(NOW)
    today = pd.Timestamp(NOW.replace(tzinfo=None)).normalize()
    assert today - windows.split.train_start == pd.Timedelta(days=FRAUD_RETRAIN_SPAN_DAYS)
    assert LAKE_DAYS_FOR_A_RETRAIN == FRAUD_REACH_DAYS + FRAUD_RETRAIN_SPAN_DAYS + 1


def test_a_world_saved_before_the_dev_world_grew_is_named_with_the_way_out(
        capsys: pytest.CaptureFixture[str]) -> None:
    old = world_bounds(TransactionWorldConfig())  # 58 days
    say_if_short(old, LAKE_DAYS_FOR_A_RETRAIN)
    assert "holds 58 days" in capsys.readouterr().out

    say_if_short(world_bounds(SCALES["default"].transactions), LAKE_DAYS_FOR_A_RETRAIN)
    assert capsys.readouterr().out == ""
