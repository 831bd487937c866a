"""The worlds' history as events, shifted in time so that the history ends now (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd

from services.common.bus.events import Event
from services.common.bus.ports import OutboundMessage
from services.common.bus.topics import FRAUD_LABELS, TRANSACTIONS, WATCH_EVENTS

SOURCE = "seed"


def _utc(moment: pd.Timestamp) -> datetime:
    stamp: datetime = moment.to_pydatetime()
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def watch_messages(interactions: pd.DataFrame, shift: timedelta) -> Iterator[OutboundMessage]:
    """One `watch` event per interaction, keyed by user, ids stable so a re-seed is deduplicated."""
    for row in interactions.itertuples(index=False):
        time = _utc(row.timestamp) + shift
        event = Event(id=f"seed-watch-{row.event_id}", type="watch", source=SOURCE, time=time,
                      data={"user_id": row.user_id, "content_id": row.content_id,
                            "watch_seconds": int(row.watch_seconds),
                            "completed": bool(row.completed)})
        yield OutboundMessage.of(WATCH_EVENTS, row.user_id, event)


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


def recent(frame: pd.DataFrame, column: str, days: float | None) -> pd.DataFrame:
    """The last `days` of history (all of it when None)."""
    if days is None:
        return frame
    return frame[frame[column] >= frame[column].max() - pd.Timedelta(days=days)]
