"""The worlds' history as events, shifted in time so that the history ends now (pure, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from services.common.bus.topics import FRAUD_LABELS, TRANSACTIONS, WATCH_EVENTS
from services.trainer.worlds.movielens import MovieLensWorld

SOURCE = "seed"
PROFILE_UNKNOWN = "unknown"  # a profile's kind (kids, teen, adult) where the data has none


def _utc(moment: pd.Timestamp) -> datetime:
    stamp: datetime = moment.to_pydatetime()
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


@dataclass(frozen=True)
class ViewingHistory:
    """What the seeder replays of a viewing world: the events before the split (the future
    stays unseen, so the online state is the offline evaluation's state), the users' profiles
    and the titles' release dates."""

    history: pd.DataFrame     # interactions before `split`
    split: datetime           # the instant the replay moves to "now"
    profiles: list[tuple[str, str, int]]   # (user id, kind, max maturity level)
    titles: pd.DataFrame      # content_id, release_date


def synthetic_history(users: pd.DataFrame, titles: pd.DataFrame,
                      interactions: pd.DataFrame) -> ViewingHistory:
    """The synthetic viewing world: its last week is the held-out future."""
    split = _utc(interactions["timestamp"].max() - pd.Timedelta(days=7))
    profiles = list(zip(users["user_id"], users["profile"], users["max_maturity"].astype(int),
                        strict=True))
    return ViewingHistory(interactions[interactions["timestamp"] < split], split, profiles,
                          titles)


def movielens_history(world: MovieLensWorld) -> ViewingHistory:
    """MovieLens 100k: the trainer's global time cut is the split. MovieLens knows no maturity:
    every user's limit is the world's (the highest level: everyone may watch everything) and
    the profile's kind is unknown."""
    profiles = [(str(user), PROFILE_UNKNOWN, int(limit)) for user, limit
                in zip(world.users["user_id"], world.users["max_maturity"], strict=True)]
    return ViewingHistory(world.train, _utc(pd.Timestamp(world.split)), profiles, world.titles)


def watch_messages(interactions: pd.DataFrame, shift: timedelta) -> Iterator[OutboundMessage]:
    """One `watch` event per interaction in time order, keyed by user, ids stable so a re-seed
    is deduplicated. A world without durations (MovieLens records ratings) sends 0 seconds:
    nothing downstream reads the duration, only `completed`."""
    ordered = interactions.sort_values("timestamp", kind="stable")
    durations = (ordered["watch_seconds"] if "watch_seconds" in ordered
                 else pd.Series(0, index=ordered.index))
    for row, seconds in zip(ordered.itertuples(index=False), durations, strict=True):
        time = _utc(row.timestamp) + shift
        user, title = str(row.user_id), str(row.content_id)
        event = Event(id=f"seed-watch-{row.event_id}", type="watch", source=SOURCE, time=time,
                      data={"user_id": user, "content_id": title,
                            "watch_seconds": int(seconds), "completed": bool(row.completed)})
        yield OutboundMessage.of(WATCH_EVENTS, user, event)


def catalog_rows(titles: pd.DataFrame, shift: timedelta) -> pd.DataFrame:
    """The world's titles as a catalog file's rows (services/catalog_etl's columns): id, name,
    genres as a list, the release date moved by the replay's shift (else every title would look
    `shift` older to the ranker than it did in training). No maturity rating: a title the ranker
    was trained on keeps its trained level whatever the catalog says."""
    released = (titles["release_date"] + shift).map(lambda t: _utc(t).date())
    return pd.DataFrame({
        "content_id": titles["content_id"].astype(str).to_numpy(),
        "title": titles["title"].astype(str).to_numpy(),
        "genres": [str(g).split("|") for g in titles["genres"]],
        "release_date": released.to_numpy(),
    })


def transaction_messages(transactions: pd.DataFrame, shift: timedelta,
                         now: datetime) -> Iterator[OutboundMessage]:
    """Transactions in time order, each fraud's label once it has arrived (label_time <= now)."""
    timeline: list[tuple[datetime, int, OutboundMessage]] = []
    for row in transactions.itertuples(index=False):
        time = _utc(row.tx_datetime) + shift
        data = {
            "transaction_id": row.transaction_id, "user_id": row.customer_id,
            "card_id": row.card_id, "amount": round(float(row.amount), 2),
            "currency": row.currency, "transaction_type": row.transaction_type,
            "merchant_id": row.merchant_id, "merchant_category": row.merchant_category,
            "terminal_id": row.terminal_id, "latitude": float(row.latitude),
            "longitude": float(row.longitude), "timestamp": time.isoformat(),
            "ip_address": row.ip_address, "device_id": row.device_id,
        }
        event = Event(id=f"seed-tx-{row.transaction_id}", type="transaction", source=SOURCE,
                      time=time, data=data)
        timeline.append((time, 0, OutboundMessage.of(TRANSACTIONS, row.card_id, event)))
        label_time = _utc(row.label_time) + shift
        if row.is_fraud and label_time <= now:
            label = Event(id=f"seed-label-{row.transaction_id}", type="fraud_label",
                          source=SOURCE, time=label_time, data={
                              "transaction_id": row.transaction_id, "card_id": row.card_id,
                              "terminal_id": row.terminal_id, "merchant_id": row.merchant_id,
                              "transaction_time": time.isoformat(), "is_fraud": True})
            timeline.append((label_time, 1, OutboundMessage.of(FRAUD_LABELS, row.card_id, label)))
    timeline.sort(key=lambda item: (item[0], item[1]))
    for _, _, message in timeline:
        yield message


def transaction_history(transactions: pd.DataFrame, now: datetime,
                        days: float | None) -> list[OutboundMessage]:
    """The world's last `days` of transactions and their arrived labels, moved by whole weeks
    (weekday and hour of day, two of the model's features, survive) to end in the week before
    `now`."""
    replayed = recent(transactions, "tx_datetime", days)
    gap = now - _utc(replayed["tx_datetime"].max())
    shift = timedelta(weeks=math.floor(gap / timedelta(weeks=1)))
    return list(transaction_messages(replayed, shift, now))


def recent(frame: pd.DataFrame, column: str, days: float | None) -> pd.DataFrame:
    """The last `days` of history (all of it when None)."""
    if days is None:
        return frame
    return frame[frame[column] >= frame[column].max() - pd.Timedelta(days=days)]
