"""Fraud presets: the transactions that show each story the rules and the model tell.

Each preset is a list of score requests sent in order; only the last is the one to look at,
the earlier ones build the card's history (a burst shows its rules firing step by step). Every
run gets fresh ids, so the velocity windows of one run never leak into the next."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

Body = dict[str, Any]

PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    story: str
    build: Callable[[datetime, str], list[Body]]


def transaction(run: str, n: int, now: datetime, *, amount: float = 42.5,
                category: str = "grocery", place: tuple[float, float] = PARIS,
                device: str = "phone", ip: str = "192.0.2.10",
                transaction_type: str = "purchase") -> Body:
    """One request of a run: the card, customer and merchant are the run's own."""
    return {"transaction_id": f"console-{run}-{n}", "user_id": f"console-customer-{run}",
            "card_id": f"console-card-{run}", "amount": amount, "currency": "EUR",
            "transaction_type": transaction_type, "merchant_id": f"console-merchant-{category}",
            "merchant_category": category, "latitude": place[0], "longitude": place[1],
            "timestamp": now.isoformat(), "ip_address": ip,
            "device_id": f"console-device-{device}-{run}"}


def _ordinary(now: datetime, run: str) -> list[Body]:
    return [transaction(run, 0, now)]


def _card_testing(now: datetime, run: str) -> list[Body]:
    # small amounts, seconds apart: a stolen card checked before the real spend
    return [transaction(run, n, now - timedelta(seconds=5 * (5 - n)), amount=1.0,
                        category="digital_goods") for n in range(6)]


def _impossible_travel(now: datetime, run: str) -> list[Body]:
    return [transaction(run, 0, now - timedelta(minutes=30)),
            transaction(run, 1, now, place=NEW_YORK, amount=120.0, ip="198.51.100.7")]


def _account_takeover(now: datetime, run: str) -> list[Body]:
    # a known card on its usual device, then a new device and IP moving money out
    return [transaction(run, 0, now - timedelta(days=2)),
            transaction(run, 1, now, amount=2500.0, category="money_transfer",
                        transaction_type="transfer", device="unseen", ip="198.51.100.23")]


def _night_on_new_device(now: datetime, run: str) -> list[Body]:
    late = at_local_hour(now, 3)
    return [transaction(run, 0, now - timedelta(days=3)),
            transaction(run, 1, late, amount=3200.0, category="electronics", device="unseen")]


def at_local_hour(instant: datetime, hour: int) -> datetime:
    """The same instant, written with the UTC offset where it is `hour` o'clock: the night
    features read the offset as the customer's local time."""
    offset = (hour - instant.astimezone(UTC).hour + 12) % 24 - 12
    return instant.astimezone(timezone(timedelta(hours=offset)))


PRESETS: tuple[Preset, ...] = (
    Preset("ordinary", "Ordinary purchase", "42.50 EUR at a grocery, card's usual device",
           _ordinary),
    Preset("card-testing", "Card-testing burst",
           "six 1.00 EUR digital-goods payments, 5 s apart", _card_testing),
    Preset("impossible-travel", "Impossible travel",
           "Paris, then New York 30 minutes later", _impossible_travel),
    Preset("account-takeover", "Account takeover",
           "a new device and IP transfer 2,500 EUR out", _account_takeover),
    Preset("night-new-device", "Large amount at night, new device",
           "3,200 EUR of electronics at 03:00 local time on an unseen device",
           _night_on_new_device),
)
BY_KEY = {p.key: p for p in PRESETS}


def build(key: str, now: datetime | None = None, run: str | None = None) -> list[Body]:
    """The requests of preset `key` (KeyError: no such preset)."""
    return BY_KEY[key].build(now or datetime.now(UTC), run or uuid.uuid4().hex[:10])
