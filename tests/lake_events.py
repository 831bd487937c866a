"""Valid events of every lake topic, for the lake's tests (ids carry a run tag to filter by)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.common.bus import topics
from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from services.lake.replay import write_to_lake

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def message(topic: str, key: str, event_type: str, data: dict[str, Any], at: datetime,
            event_id: str, source: str = "it") -> OutboundMessage:
    return OutboundMessage.of(topic, key, Event(id=event_id, type=event_type, source=source,
                                                time=at, data=data))


def watch(run: str, i: int, at: datetime = T0, source: str = "it") -> OutboundMessage:
    user = f"{run}u{i % 5}"
    return message(topics.WATCH_EVENTS, user, "watch", {
        "user_id": user, "content_id": f"{run}t{i % 7}", "watch_seconds": 60 + i,
        "completed": i % 2 == 0}, at, f"{run}-watch-{i}", source)


def exposure(run: str, experiment: str, unit: str, variation: str, at: datetime,
             i: int) -> OutboundMessage:
    return message(topics.EXPOSURES, unit, "exposure", {
        "experiment": experiment, "variation": variation, "unit_id": unit},
        at, f"{run}-exposure-{i}")


def impression(run: str, user: str, request_id: str, experiment: str | None,
               variation: str | None, at: datetime, i: int,
               empty: bool = False) -> OutboundMessage:
    return message(topics.REC_IMPRESSIONS, user, "impression", {
        "user_id": user, "content_ids": [] if empty else [f"{run}t1", f"{run}t2"],
        "request_id": request_id, "experiment": experiment, "variation": variation}, at,
        f"{run}-impression-{i}")


def click(run: str, user: str, request_id: str | None, at: datetime, i: int,
          position: int = 0) -> OutboundMessage:
    return message(topics.REC_CLICKS, user, "click", {
        "user_id": user, "content_id": f"{run}t1", "position": position,
        "request_id": request_id}, at, f"{run}-click-{i}")


def transaction(run: str, i: int, at: datetime = T0) -> OutboundMessage:
    card = f"{run}c{i % 3}"
    return message(topics.TRANSACTIONS, card, "transaction", {
        "transaction_id": f"{run}x{i}", "user_id": f"{run}u{i % 3}", "card_id": card,
        "amount": 10.0 + i, "currency": "EUR", "transaction_type": "purchase",
        "merchant_id": f"{run}m1", "merchant_category": "grocery", "terminal_id": f"{run}k1",
        "latitude": 48.85, "longitude": 2.35, "timestamp": at.isoformat(),
        "ip_address": "10.0.0.1", "device_id": f"{run}d1"}, at, f"{run}-transaction-{i}")


def decision(run: str, i: int, action: str, rule_hits: list[str],
             at: datetime = T0) -> OutboundMessage:
    card = f"{run}c{i % 3}"
    return message(topics.FRAUD_DECISIONS, card, "fraud_decision", {
        "transaction_id": f"{run}x{i}", "card_id": card, "user_id": f"{run}u{i % 3}",
        "transaction_time": at.isoformat(), "amount": 10.0 + i, "path": "stream",
        "risk_score": 0.9 if action == "decline" else 0.1,
        "risk_level": "critical" if action == "decline" else "low", "action": action,
        "reason_codes": [h.upper() for h in rule_hits], "rule_hits": rule_hits,
        "ml_score": 0.5, "model_version": 1, "policy_version": "p1", "degraded": [],
        "features": None}, at, f"{run}-decision-{i}")


def label(run: str, i: int, is_fraud: bool, at: datetime = T0) -> OutboundMessage:
    card = f"{run}c{i % 3}"
    return message(topics.FRAUD_LABELS, card, "fraud_label", {
        "transaction_id": f"{run}x{i}", "card_id": card, "terminal_id": f"{run}k1",
        "merchant_id": f"{run}m1", "transaction_time": at.isoformat(), "is_fraud": is_fraud},
        at + timedelta(days=1), f"{run}-label-{i}")


def title(run: str, i: int, genres: list[str], at: datetime = T0) -> OutboundMessage:
    content = f"{run}t{i}"
    return message(topics.CATALOG, content, "title", {
        "content_id": content, "title": f"Title {i}", "genres": genres,
        "maturity_rating": "PG"}, at, f"{run}-title-{i}")



def fill_lake(root: Path, messages: Iterable[OutboundMessage]) -> None:
    """Write `messages` into a lake at `root` through the real sink loop (in-memory broker)."""
    write_to_lake(root, messages)
