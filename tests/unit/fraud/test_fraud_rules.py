"""Every rule of config/fraud/policy.toml on facts made by the real feature code: each fires on a
transaction built to trigger it and stays silent on a near miss; lists; history; reason texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import pytest

from services.designs.fraud.features import batch_features
from services.designs.fraud.state import FraudState, StateBatch
from services.fraud.facts import Fact, fact_table
from services.fraud.policy import Lists, parse_policy
from services.fraud.policy_file import load_engine
from services.fraud.rules import ListHit, RuleEngine
from services.fraud.transaction import Transaction
from tests.support.fraud import (
    AWAY_1000_KM,
    DAY,
    HOME,
    HOUR,
    MINUTE,
    POLICY_PATH,
    SECOND,
    T,
    history,
    transaction,
    use,
)

AWAY_50_KM = (HOME[0] + 0.45, HOME[1])
AWAY_100_KM = (HOME[0] + 0.9, HOME[1])   # 100.08 km
UNDER_100_KM = (HOME[0] + 0.899, HOME[1])  # 99.96 km








def facts(txn: Transaction, state: FraudState, *, with_history: bool = True) -> dict[str, Fact]:
    """What the scorer gives the rules: the transaction, the model's features, card velocity."""
    features = batch_features([txn], StateBatch.of([state]))
    return fact_table([txn], features.matrix, features.velocity, with_history=with_history).row(0)


class Scenario(NamedTuple):
    why: str
    txn: Transaction
    state: FraudState


def when(why: str, state: FraudState | None = None, **txn_changes: Any) -> Scenario:
    return Scenario(why, transaction(**txn_changes), state or FraudState())


@dataclass(frozen=True)
class Case:
    rule_id: str
    fires: tuple[Scenario, ...]
    misses: tuple[Scenario, ...]


def at_local(hour: int, minute: int = 0, offset_h: int = 2) -> datetime:
    """4 March 2026 at hour:minute local time, written with a UTC offset of `offset_h` hours."""
    return datetime(2026, 3, 4, hour, minute, tzinfo=timezone(timedelta(hours=offset_h)))


THREE_AT_40 = history(use(DAY, 40.0), use(2 * DAY, 40.0), use(3 * DAY, 40.0))
THREE_AT_20 = history(use(DAY, 20.0), use(2 * DAY, 20.0), use(3 * DAY, 20.0))

CASES = (
    Case("AMOUNT_HIGH",
         fires=(when("1,000 exactly", amount=1000.0),),
         misses=(when("a cent under", amount=999.99),)),
    Case("AMOUNT_VERY_HIGH",
         fires=(when("10,000 exactly", amount=10_000.0),),
         misses=(when("a cent under", amount=9_999.99),)),
    Case("AMOUNT_SPIKE",
         fires=(when("5x a 40 average over 3 payments", THREE_AT_40, amount=200.0),
                when("100 at 5x a 20 average", THREE_AT_20, amount=100.0)),
         misses=(when("4.9998x", THREE_AT_40, amount=199.99),
                 when("only 2 earlier payments",
                      history(use(DAY, 40.0), use(2 * DAY, 40.0)), amount=200.0),
                 when("9.999x but under 100",
                      history(use(DAY, 10.0), use(2 * DAY, 10.0), use(3 * DAY, 10.0)),
                      amount=99.99))),
    Case("UNUSUAL_HOUR",
         fires=(when("200 at 03:00 local (01:00 UTC)", amount=200.0, timestamp=at_local(3)),
                when("200 at 01:00 local", amount=200.0, timestamp=at_local(1))),
         misses=(when("05:00 local", amount=200.0, timestamp=at_local(5)),
                 when("00:30 local", amount=200.0, timestamp=at_local(0, 30)),
                 when("03:00 UTC is noon in Tokyo", amount=200.0,
                      timestamp=at_local(12, offset_h=9)),
                 when("199.99 at 03:00", amount=199.99, timestamp=at_local(3)))),
    Case("VELOCITY_1M_COUNT",
         fires=(when("3 in the minute, one exactly a minute ago",
                     history(use(10 * SECOND), use(20 * SECOND), use(MINUTE))),),
         misses=(when("the third 61 s ago",
                      history(use(10 * SECOND), use(20 * SECOND), use(MINUTE + SECOND))),)),
    Case("VELOCITY_1M_AMOUNT",
         fires=(when("500 + 500", history(use(10 * SECOND, 500.0), use(30 * SECOND, 500.0))),),
         misses=(when("500 + 499.99",
                      history(use(10 * SECOND, 500.0), use(30 * SECOND, 499.99))),)),
    Case("VELOCITY_1H_COUNT",
         fires=(when("4 in the hour",
                     history(*(use(m * MINUTE) for m in (5, 15, 30, 60)))),),
         misses=(when("the fourth 61 min ago",
                      history(*(use(m * MINUTE) for m in (5, 15, 30, 61)))),)),
    Case("VELOCITY_1H_AMOUNT",
         fires=(when("1,000 + 1,000",
                     history(use(10 * MINUTE, 1000.0), use(50 * MINUTE, 1000.0))),),
         misses=(when("1,000 + 999.99",
                      history(use(10 * MINUTE, 1000.0), use(50 * MINUTE, 999.99))),
                 when("the second 1,000 61 min ago",
                      history(use(10 * MINUTE, 1000.0), use(61 * MINUTE, 1000.0))))),
    Case("VELOCITY_24H_COUNT",
         fires=(when("20 in the day", history(*(use(h * HOUR) for h in range(1, 21)))),),
         misses=(when("19 in the day and one 25 h ago",
                      history(*(use(h * HOUR) for h in (*range(1, 20), 25)))),)),
    Case("VELOCITY_24H_AMOUNT",
         fires=(when("2,500 + 2,500", history(use(2 * HOUR, 2500.0), use(23 * HOUR, 2500.0))),),
         misses=(when("2,500 + 2,499.99",
                      history(use(2 * HOUR, 2500.0), use(23 * HOUR, 2499.99))),
                 when("the second 2,500 25 h ago",
                      history(use(2 * HOUR, 2500.0), use(25 * HOUR, 2500.0))))),
    Case("CARD_TESTING",
         fires=(when("1, 2 and 4.99 in the hour",
                     history(use(5 * MINUTE, 1.0), use(20 * MINUTE, 2.0),
                             use(50 * MINUTE, 4.99))),),
         misses=(when("the third is 5: not small",
                      history(use(5 * MINUTE, 1.0), use(20 * MINUTE, 2.0),
                              use(50 * MINUTE, 5.0))),
                 when("the third 61 min ago",
                      history(use(5 * MINUTE, 1.0), use(20 * MINUTE, 2.0),
                              use(61 * MINUTE, 4.99))))),
    Case("IMPOSSIBLE_TRAVEL",
         fires=(when("1,000 km in 10 min, the last place beyond the 30 days' list",
                     history(use(45 * DAY, place=HOME), use(10 * MINUTE, place=AWAY_1000_KM))),
                when("1,000 km in 10 min, a card use",
                     history(use(10 * MINUTE, place=AWAY_1000_KM))),
                when("1,000 km in 66 min: 910 km/h", history(use(66 * MINUTE, place=AWAY_1000_KM))),
                when("100 km in a minute", history(use(MINUTE, place=AWAY_100_KM)))),
         misses=(when("1,000 km in 2 h: 500 km/h",
                      history(use(45 * DAY, place=HOME), use(2 * HOUR, place=AWAY_1000_KM))),
                 when("1,000 km in 67 min: 896 km/h",
                      history(use(67 * MINUTE, place=AWAY_1000_KM))),
                 when("50 km in a minute: GPS noise",
                      history(use(MINUTE, place=AWAY_50_KM))),
                 when("99.96 km in a minute", history(use(MINUTE, place=UNDER_100_KM))),
                 when("far away 2 h ago, but home 10 min ago",
                      history(use(2 * HOUR, place=AWAY_1000_KM), use(10 * MINUTE))))),
    Case("NEW_DEVICE",
         fires=(when("the card was used on dev2 only", history(use(DAY, device="dev2"))),),
         misses=(when("the card's first payment"),
                 when("dev1 was used 29 days ago",
                      history(use(DAY, device="dev2"), use(29 * DAY, device="dev1"))))),
    Case("NEW_IP",
         fires=(when("the card was used from another IP", history(use(DAY, ip="81.0.0.2"))),),
         misses=(when("the card's first payment"),
                 when("this IP was used before", history(use(DAY))))),
    Case("SHARED_DEVICE",
         fires=(when("3 other cards on the device", FraudState(device_cards_30d=3)),),
         misses=(when("3 cards, this one among them",
                      FraudState(device_cards_30d=3, device_card_last_seen_ms=T - DAY)),)),
    Case("SHARED_IP",
         fires=(when("8 other cards from the IP", FraudState(ip_cards_30d=8)),),
         misses=(when("8 cards, this one among them",
                      FraudState(ip_cards_30d=8, ip_card_last_seen_ms=T - HOUR)),)),
    Case("RISKY_MERCHANT_CATEGORY",
         fires=tuple(when(c, merchant_category=c)
                     for c in ("money_transfer", "online_gaming", "digital_goods")),
         misses=(when("grocery", merchant_category="grocery"),
                 when("a prefix is not a member", merchant_category="online_gaming_shop"))),
)


def _params(kind: str) -> list[Any]:
    return [pytest.param(case.rule_id, scenario, id=f"{case.rule_id}: {scenario.why}")
            for case in CASES for scenario in getattr(case, kind)]


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return load_engine(POLICY_PATH)


@pytest.mark.parametrize(("rule_id", "scenario"), _params("fires"))
def test_the_rule_fires_on_a_transaction_made_to_trigger_it(
        engine: RuleEngine, rule_id: str, scenario: Scenario) -> None:
    hits = {hit.rule_id: hit for hit in engine.hits(facts(scenario.txn, scenario.state))}
    assert rule_id in hits
    rule = next(r for r in engine.policy.rules if r.id == rule_id)
    assert (hits[rule_id].score, hits[rule_id].action) == (rule.score, rule.action)
    assert "?" not in hits[rule_id].text  # every placeholder named a fact that was there


@pytest.mark.parametrize(("rule_id", "scenario"), _params("misses"))
def test_the_rule_stays_silent_on_a_near_miss(
        engine: RuleEngine, rule_id: str, scenario: Scenario) -> None:
    hits = [hit.rule_id for hit in engine.hits(facts(scenario.txn, scenario.state))]
    assert rule_id not in hits


def test_every_rule_in_the_policy_file_has_cases_that_fire_and_miss(engine: RuleEngine) -> None:
    assert {case.rule_id for case in CASES} == {rule.id for rule in engine.policy.rules}
    assert len(CASES) == len(engine.policy.rules)
    assert all(case.fires and case.misses for case in CASES)


def test_a_quiet_purchase_fires_no_rule_and_hits_no_list(engine: RuleEngine) -> None:
    quiet = facts(transaction(), history(use(DAY), use(2 * DAY)))
    assert engine.hits(quiet) == []
    assert engine.listed(quiet) is None


def test_the_allow_list_wins_over_the_block_list(engine: RuleEngine) -> None:
    allowing = RuleEngine(engine.policy.model_copy(
        update={"allow": Lists(card_id=frozenset({"card1"}))}))
    listed = allowing.listed(facts(transaction(device_id="dev999999"), FraudState()))
    assert listed == ListHit("allow", "card_id", "card1")
    assert listed.code == "ALLOW_LIST_CARD_ID"
    assert listed.text == "card id card1 is on the allow list"


@pytest.mark.parametrize(("changes", "expected", "code"), [
    ({"device_id": "dev999999"}, ListHit("block", "device_id", "dev999999"),
     "BLOCK_LIST_DEVICE_ID"),
    ({"ip_address": "203.0.113.66"}, ListHit("block", "ip_address", "203.0.113.66"),
     "BLOCK_LIST_IP_ADDRESS"),
])
def test_a_device_or_ip_on_the_block_list_is_a_list_hit(
        engine: RuleEngine, changes: dict[str, str], expected: ListHit, code: str) -> None:
    listed = engine.listed(facts(transaction(**changes), FraudState()))
    assert listed == expected
    assert listed.code == code
    assert listed.text.endswith("is on the block list")


HISTORY_RULES = {"AMOUNT_SPIKE", "VELOCITY_1M_COUNT", "VELOCITY_1M_AMOUNT", "VELOCITY_1H_COUNT",
                 "VELOCITY_1H_AMOUNT", "VELOCITY_24H_COUNT", "VELOCITY_24H_AMOUNT",
                 "CARD_TESTING", "IMPOSSIBLE_TRAVEL", "NEW_DEVICE", "NEW_IP", "SHARED_DEVICE",
                 "SHARED_IP"}


def test_the_rules_that_need_the_cards_history_are_the_ones_testing_history_facts(
        engine: RuleEngine) -> None:
    assert {rule.id for rule in engine.policy.rules if rule.needs_history} == HISTORY_RULES


@pytest.mark.parametrize(("rule_id", "scenario"), _params("fires"))
def test_without_history_facts_only_the_rules_on_the_transaction_itself_fire(
        engine: RuleEngine, rule_id: str, scenario: Scenario) -> None:
    hits = [hit.rule_id for hit in engine.hits(
        facts(scenario.txn, scenario.state, with_history=False))]
    assert (rule_id in hits) == (rule_id not in HISTORY_RULES)


def test_a_negated_condition_on_a_missing_fact_does_not_hold() -> None:
    engine = RuleEngine(parse_policy({"version": "t", "rules": [
        {"id": "KNOWN_DEVICE", "description": "d", "score": 0.1,
         "when": [{"fact": "is_new_device", "op": "!=", "value": 1}]},
        {"id": "NOT_RISKY", "description": "d", "score": 0.1,
         "when": [{"fact": "is_new_ip", "op": "not_in", "value": [1]}]},
    ]}))
    known = history(use(DAY))
    assert [h.rule_id for h in engine.hits(facts(transaction(), known))] == [
        "KNOWN_DEVICE", "NOT_RISKY"]
    assert engine.hits(facts(transaction(), known, with_history=False)) == []


def test_a_disabled_rule_never_fires() -> None:
    engine = RuleEngine(parse_policy({"version": "t", "rules": [
        {"id": "ANY_AMOUNT", "description": "d", "score": 0.1, "enabled": False,
         "when": [{"fact": "amount", "op": ">", "value": 0}]},
    ]}))
    assert engine.hits(facts(transaction(), FraudState())) == []


def _text(engine: RuleEngine, rule_id: str, txn: Transaction, state: FraudState) -> str:
    return next(hit.text for hit in engine.hits(facts(txn, state)) if hit.rule_id == rule_id)


@pytest.mark.parametrize(("rule_id", "txn", "state", "text"), [
    ("AMOUNT_HIGH", transaction(amount=1500.0), FraudState(),
     "amount 1,500 is 1,000 or more"),
    ("AMOUNT_HIGH", transaction(amount=1250.5), FraudState(),
     "amount 1,250.50 is 1,000 or more"),
    ("AMOUNT_VERY_HIGH", transaction(amount=1_000_000.0), FraudState(),
     "amount 1,000,000 is 10,000 or more: always reviewed"),
    ("VELOCITY_1M_COUNT", transaction(), history(use(SECOND), use(2 * SECOND), use(3 * SECOND)),
     "3 transactions on the card in the last minute"),
    ("AMOUNT_SPIKE", transaction(amount=250.0), THREE_AT_40,
     "amount 250 is 6.25x the card's 30-day average"),
    ("NEW_DEVICE", transaction(), history(use(DAY, device="dev2")),
     "device dev1 is new to the card (not used in 30 days)"),
    ("IMPOSSIBLE_TRAVEL", transaction(), history(use(10 * MINUTE, place=AWAY_1000_KM)),
     "1,000.75 km from the card's previous transaction at 6,004.53 km/h, faster than an "
     "airliner"),
])
def test_reason_texts_write_numbers_as_people_do(
        engine: RuleEngine, rule_id: str, txn: Transaction, state: FraudState,
        text: str) -> None:
    assert _text(engine, rule_id, txn, state) == text


def test_a_placeholder_whose_fact_is_missing_reads_as_a_question_mark() -> None:
    engine = RuleEngine(parse_policy({"version": "t", "rules": [
        {"id": "BIG", "description": "{amount} after {card_nb_tx_1m} in the minute",
         "score": 0.1, "when": [{"fact": "amount", "op": ">=", "value": 1000}]},
    ]}))
    without_history = facts(transaction(amount=1500.0), FraudState(), with_history=False)
    assert [hit.text for hit in engine.hits(without_history)] == ["1,500 after ? in the minute"]
