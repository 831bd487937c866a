"""The load test's traffic generator (load-tests/transactions.py) on a tiny in-memory world."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.designs.fraud.features import haversine_km
from services.designs.model_features import SMALL_AMOUNT
from services.trainer.worlds.transactions import MERCHANT_CATEGORIES
from tests.load_tests_modules import load

tx = load("transactions")

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
HOME = (53.5, 0.5)  # the north-west corner of the world's region
FAR = (45.2, 13.8)  # its south-east corner, about 1,300 km away
ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _terminal(n: int, where: tuple[float, float], category: str) -> Any:
    return tx.Terminal(f"term{n}", where[0], where[1], f"m{n}", category)


def _world(**customer: Any) -> Any:
    """Two customers at home in the north-west; a terminal of every kind near them, one far."""
    near = (HOME[0] + 0.05, HOME[1] + 0.05)
    terminals = [
        _terminal(0, near, "grocery"),
        _terminal(1, near, "atm"),
        _terminal(2, near, "utilities"),
        _terminal(3, near, "digital_goods"),
        _terminal(4, near, "money_transfer"),
        _terminal(5, FAR, "restaurants"),
    ]
    customers = [
        tx.Customer("cust0", "card0", *HOME, 40.0, 20.0, "dev0", "dev1", "81.0.0.1",
                    **customer),
        tx.Customer("cust1", "card1", *HOME, 10.0, 5.0, "dev2", None, "81.0.0.2"),
    ]
    return tx.World(customers, terminals)


def _stream(world: Any | None = None, seed: int = 0, **mix: Any) -> Any:
    return tx.TrafficGenerator(world or _world(), random.Random(seed),
                               tx.Mix(**mix) if mix else None, clock=lambda: NOW)


def _take(n: int, **mix: Any) -> list[Any]:
    stream = _stream(**mix)
    return [next(stream) for _ in range(n)]


def _when(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["timestamp"])


def test_requests_follow_the_score_contract() -> None:
    for request in _take(2_000, fraud_share=0.5):
        body = request.body
        assert ID.fullmatch(body["transaction_id"]) and body["transaction_id"].startswith("lt-")
        assert re.fullmatch(r"cust\d+", body["user_id"])
        assert re.fullmatch(r"card\d+", body["card_id"])
        assert re.fullmatch(r"m\d+", body["merchant_id"])
        assert re.fullmatch(r"term\d+", body["terminal_id"])
        assert re.fullmatch(r"dev\d+", body["device_id"])
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", body["ip_address"])
        assert body["amount"] > 0 and body["currency"] == "EUR"
        assert body["transaction_type"] == MERCHANT_CATEGORIES[body["merchant_category"]][1]
        assert _when(body).utcoffset() == timedelta(0)


def test_every_request_has_its_own_transaction_id() -> None:
    ids = [r.body["transaction_id"] for r in _take(5_000, fraud_share=0.5)]
    assert len(set(ids)) == len(ids)


def test_legitimate_requests_are_the_customers_own_card_device_home_ip_near_home() -> None:
    world = _world()
    for request in _take(500, fraud_share=0.0):
        body = request.body
        customer = next(c for c in world.customers if c.customer_id == body["user_id"])
        assert request.pattern == tx.LEGITIMATE
        assert body["card_id"] == customer.card_id
        assert body["device_id"] in {customer.device_id, customer.second_device_id}
        assert body["ip_address"] == customer.home_ip
        assert body["terminal_id"] in {"term0", "term1", "term2", "term3", "term4"}
        assert _when(body) == NOW


def test_legitimate_amounts_follow_the_customers_own_distribution() -> None:
    amounts = [r.body["amount"] for r in _take(4_000, fraud_share=0.0)
               if r.body["user_id"] == "cust0"]
    assert 37.0 < float(np.mean(amounts)) < 43.0  # N(40, 20) clipped above 0
    assert min(amounts) > 0


def test_about_three_percent_of_requests_are_fraud_with_every_pattern_present() -> None:
    patterns = Counter(r.pattern for r in _take(40_000))
    fraud = 1 - patterns[tx.LEGITIMATE] / 40_000
    assert 0.025 < fraud < 0.035
    assert set(patterns) == {tx.LEGITIMATE, *tx.FRAUD_PATTERNS}


def test_busier_customers_send_more_requests() -> None:
    stream = _stream(_world(transactions_per_day=9.0), fraud_share=0.0)
    customers = Counter(next(stream).body["user_id"] for _ in range(5_000))
    assert 0.85 < customers["cust0"] / 5_000 < 0.95  # 9 transactions a day against 1


def test_card_testing_is_a_burst_of_small_amounts_from_one_card_at_one_digital_merchant() -> None:
    requests = _take(60, fraud_share=1.0, pattern_weights={tx.CARD_TESTING: 1.0})
    bursts: list[list[dict[str, Any]]] = []
    for request in requests:
        body = request.body
        assert request.pattern == tx.CARD_TESTING
        assert body["amount"] < SMALL_AMOUNT
        assert body["merchant_category"] in {"digital_goods", "online_gaming"}
        assert body["device_id"] not in {"dev0", "dev1", "dev2"}
        # a burst: one card, one merchant, one fraudster's device (a new one per burst)
        if bursts and _burst_key(body) == _burst_key(bursts[-1][-1]):
            bursts[-1].append(body)
        else:
            bursts.append([body])
    assert all(3 <= len(b) <= 8 for b in bursts[:-1])  # the last one may be cut off


def _burst_key(body: dict[str, Any]) -> tuple[str, str, str]:
    return body["card_id"], body["merchant_id"], body["device_id"]


def test_impossible_travel_is_over_1000_km_from_a_normal_transaction_minutes_earlier() -> None:
    requests = _take(30, fraud_share=1.0, pattern_weights={tx.IMPOSSIBLE_TRAVEL: 1.0})
    pairs = list(zip(requests[::2], requests[1::2], strict=True))
    for genuine, cloned in pairs:
        assert (genuine.pattern, cloned.pattern) == (tx.LEGITIMATE, tx.IMPOSSIBLE_TRAVEL)
        assert genuine.body["card_id"] == cloned.body["card_id"]
        a, b = genuine.body, cloned.body
        km = haversine_km(np.array(a["latitude"]), np.array(a["longitude"]),
                          np.array(b["latitude"]), np.array(b["longitude"]))
        assert float(km) > 1_000
        assert timedelta(minutes=2) <= _when(b) - _when(a) <= timedelta(minutes=30)


def test_account_takeover_moves_a_large_amount_from_a_new_device_and_ip() -> None:
    for request in _take(20, fraud_share=1.0, pattern_weights={tx.ACCOUNT_TAKEOVER: 1.0}):
        body = request.body
        assert request.pattern == tx.ACCOUNT_TAKEOVER
        assert body["merchant_category"] == "money_transfer"
        assert body["transaction_type"] == "transfer"
        assert body["amount"] >= 200
        assert body["device_id"] not in {"dev0", "dev1", "dev2"}
        assert body["ip_address"] not in {"81.0.0.1", "81.0.0.2"}


def test_amount_spike_is_five_to_ten_times_the_customers_mean_in_their_own_setting() -> None:
    means = {"cust0": 40.0, "cust1": 10.0}
    for request in _take(50, fraud_share=1.0, pattern_weights={tx.AMOUNT_SPIKE: 1.0}):
        body = request.body
        assert request.pattern == tx.AMOUNT_SPIKE
        assert 5 * means[body["user_id"]] <= body["amount"] <= 10 * means[body["user_id"]]
        assert body["ip_address"].startswith("81.0.0.")


def test_the_same_seed_and_clock_give_the_same_stream() -> None:
    first, second = _stream(seed=7), _stream(seed=7)
    assert [next(first).body for _ in range(300)] == [next(second).body for _ in range(300)]


def test_customers_without_a_terminal_near_home_never_transact() -> None:
    world = tx.World(
        [*_world().customers,
         tx.Customer("cust9", "card9", 49.0, 7.0, 20.0, 10.0, "dev9", None, "81.0.0.9")],
        _world().terminals,
    )
    assert "cust9" not in {c.customer_id for c in world.customers}


def test_a_world_without_a_digital_merchant_is_refused() -> None:
    terminals = [t for t in _world().terminals if t.merchant_category != "digital_goods"]
    with pytest.raises(ValueError, match="card testing"):
        tx.World(_world().customers, terminals)


def test_a_world_too_small_for_impossible_travel_is_refused() -> None:
    terminals = [t for t in _world().terminals if t.terminal_id != "term5"]
    with pytest.raises(ValueError, match="impossible travel"):
        tx.World(_world().customers, terminals)


def test_load_world_reads_the_customers_and_terminals_make_models_writes(tmp_path: Path) -> None:
    world = _world()
    pd.DataFrame([{
        "customer_id": c.customer_id, "card_id": c.card_id, "latitude": c.latitude,
        "longitude": c.longitude, "mean_amount": c.mean_amount, "std_amount": c.std_amount,
        "mean_nb_tx_per_day": 2.0, "device_id": c.device_id,
        "second_device_id": c.second_device_id, "home_ip": c.home_ip,
    } for c in world.customers]).to_parquet(tmp_path / "customers.parquet")
    pd.DataFrame([t.__dict__ for t in world.terminals]).to_parquet(tmp_path / "terminals.parquet")

    loaded = tx.load_world(tmp_path)

    assert [c.customer_id for c in loaded.customers] == ["cust0", "cust1"]
    assert loaded.customers[1].second_device_id is None
    assert loaded.customers[0].transactions_per_day == 2.0
    assert len(loaded.terminals) == len(world.terminals)


def test_load_world_says_how_to_make_a_missing_world(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make models"):
        tx.load_world(tmp_path)
