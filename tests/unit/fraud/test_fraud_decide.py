"""The combination under the repository's policy: risk, levels, forced actions, the model's own
decline, degraded decisions, list hits, confidence and the order of reasons."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.fraud.decide import Decision, decide
from services.fraud.explain import Factor, ModelVerdict
from services.fraud.policy import Action, Combination, Degraded, Policy
from services.fraud.policy_file import load_engine
from services.fraud.rules import ListHit, RuleHit
from tests.support.fraud import POLICY_PATH

MODEL_VERSION = 7


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_engine(POLICY_PATH).policy


def hit(rule_id: str, score: float, action: Action | None = None) -> RuleHit:
    return RuleHit(rule_id, f"{rule_id} fired", score, action)


def model(score: float, *factors: Factor) -> ModelVerdict:
    return ModelVerdict(score, MODEL_VERSION, factors)


def decision(policy: Policy, *hits: RuleHit, ml: ModelVerdict | None = None,
             degraded: Sequence[str] = (), amount: float = 50.0,
             listed: ListHit | None = None) -> Decision:
    return decide(policy, listed=listed, hits=hits, model=ml, degraded=degraded, amount=amount)


def codes(d: Decision) -> list[str]:
    return [reason.code for reason in d.reasons]


def with_changes(policy: Policy, **sections: object) -> Policy:
    return policy.model_copy(update=sections)


def test_the_policy_under_test_is_the_briefs(policy: Policy) -> None:
    levels = policy.levels
    assert (levels.medium, levels.high, levels.critical) == (0.3, 0.6, 0.8)
    assert (policy.combine.ml_weight, policy.combine.ml_decline_at) == (0.7, 0.8)
    assert (policy.degraded.policy, policy.degraded.open_max_amount) == ("open", 500.0)


def test_risk_is_the_rule_scores_plus_0_7_times_the_model(policy: Policy) -> None:
    d = decision(policy, hit("A", 0.2), hit("B", 0.1), ml=model(0.5))
    assert d.risk_score == pytest.approx(0.65)
    assert (d.ml_score, d.model_version) == (0.5, MODEL_VERSION)
    assert d.rule_hits == ("A", "B")


def test_risk_is_capped_at_1(policy: Policy) -> None:
    d = decision(policy, hit("A", 0.8), hit("B", 0.6), ml=model(0.7))
    assert d.risk_score == 1.0
    assert d.risk_level == "critical"


@pytest.mark.parametrize(("risk", "level", "action"), [
    (0.0, "low", "approve"),
    (0.2999, "low", "approve"),
    (0.3, "medium", "review"),
    (0.5999, "medium", "review"),
    (0.6, "high", "review"),
    (0.7999, "high", "review"),
    (0.8, "critical", "decline"),
    (1.0, "critical", "decline"),
])
def test_levels_start_at_their_thresholds(policy: Policy, risk: float, level: str,
                                          action: str) -> None:
    d = decision(policy, hit("R", risk), ml=model(0.0))
    assert (d.risk_score, d.risk_level, d.action) == (risk, level, action)


def test_a_forced_action_raises_the_levels_and_the_most_severe_wins(policy: Policy) -> None:
    d = decision(policy, hit("A", 0.05, "review"), hit("B", 0.05, "decline"),
                 hit("C", 0.05, "review"), ml=model(0.0))
    assert (d.risk_level, d.action) == ("low", "decline")
    assert d.confidence == 1.0


def test_a_forced_review_stops_a_low_risk_approval(policy: Policy) -> None:
    d = decision(policy, hit("AMOUNT_VERY_HIGH", 0.1, "review"), ml=model(0.0))
    assert (d.risk_level, d.action) == ("low", "review")


def test_a_forced_review_never_lowers_a_critical_risk_to_a_review(policy: Policy) -> None:
    # 10,000 that also travelled faster than an airliner: "always reviewed" is a floor.
    d = decision(policy, hit("AMOUNT_VERY_HIGH", 0.3, "review"),
                 hit("IMPOSSIBLE_TRAVEL", 0.8), ml=model(0.0))
    assert (d.risk_level, d.action) == ("critical", "decline")


@pytest.mark.parametrize("score", [0.8, 0.95, 1.0])
def test_the_model_alone_declines_at_ml_decline_at(policy: Policy, score: float) -> None:
    d = decision(policy, ml=model(score))
    assert d.action == "decline"
    assert d.risk_score == pytest.approx(0.7 * score)
    assert d.risk_level != "critical"
    decline = next(r for r in d.reasons if r.code == "ML_HIGH_RISK")
    assert (decline.contribution, decline.source) == (0.0, "model")
    assert decline.text == "the model alone declines at a fraud probability of 0.80 or more"
    assert d.confidence == 1.0


@pytest.mark.parametrize(("score", "level"), [(0.0, "low"), (0.5, "medium"),
                                              (0.7999, "medium")])
def test_the_model_alone_below_ml_decline_at_cannot_decline(policy: Policy, score: float,
                                                            level: str) -> None:
    d = decision(policy, ml=model(score))
    assert d.risk_level == level
    assert d.action != "decline"
    assert "ML_HIGH_RISK" not in codes(d)


def test_without_ml_decline_at_a_certain_model_only_gets_a_review(policy: Policy) -> None:
    never = with_changes(policy, combine=Combination(ml_weight=0.7, ml_decline_at=None))
    d = decision(never, ml=model(1.0))
    assert (d.risk_score, d.risk_level, d.action) == (0.7, "high", "review")


def test_closed_degraded_policy_turns_an_approval_into_a_review(policy: Policy) -> None:
    closed = with_changes(policy, degraded=Degraded(policy="closed"))
    d = decision(closed, ml=model(0.0), degraded=["features: ConnectionError: down"],
                 amount=10.0)
    assert (d.risk_level, d.action) == ("low", "review")
    review = d.reasons[-1]
    assert (review.code, review.source, review.contribution) == ("DEGRADED_REVIEW", "policy", 0.0)
    assert d.degraded == ("features: ConnectionError: down",)


def test_a_closed_policy_changes_nothing_when_whole(policy: Policy) -> None:
    closed = with_changes(policy, degraded=Degraded(policy="closed"))
    d = decision(closed, ml=model(0.0), amount=10.0)
    assert d.action == "approve"
    assert "DEGRADED_REVIEW" not in codes(d)


def test_a_degraded_decline_stays_a_decline(policy: Policy) -> None:
    closed = with_changes(policy, degraded=Degraded(policy="closed"))
    d = decision(closed, hit("R", 0.9), degraded=["model: ModelUnavailable: down"])
    assert d.action == "decline"
    assert "DEGRADED_REVIEW" not in codes(d)


@pytest.mark.parametrize(("amount", "action"), [(10.0, "approve"), (500.0, "approve"),
                                                (500.01, "review"), (5000.0, "review")])
def test_open_degraded_policy_approves_up_to_open_max_amount(policy: Policy, amount: float,
                                                             action: str) -> None:
    d = decision(policy, degraded=["model: ModelUnavailable: down"], amount=amount)
    assert d.risk_level == "low"
    assert d.action == action
    assert ("DEGRADED_REVIEW" in codes(d)) == (action == "review")


def test_an_allow_list_hit_approves_whatever_the_rules_and_model_say(policy: Policy) -> None:
    allowed = ListHit("allow", "card_id", "card1")
    d = decision(policy, hit("A", 0.9, "decline"), ml=model(0.99), listed=allowed)
    assert (d.action, d.risk_score, d.risk_level) == ("approve", 0.0, "low")
    assert [(r.code, r.contribution, r.source) for r in d.reasons] == [
        ("ALLOW_LIST_CARD_ID", 0.0, "list")]
    assert d.reasons[0].text == "card id card1 is on the allow list"
    assert d.rule_hits == ()
    assert (d.ml_score, d.model_version, d.confidence) == (0.99, MODEL_VERSION, 1.0)


def test_a_block_list_hit_declines_with_full_confidence_even_degraded(policy: Policy) -> None:
    blocked = ListHit("block", "device_id", "dev999999")
    degraded = ["features: TimeoutError: slow", "model: ModelUnavailable: down"]
    d = decision(policy, listed=blocked, degraded=degraded, amount=10.0)
    assert (d.action, d.risk_score, d.risk_level) == ("decline", 1.0, "critical")
    assert [(r.code, r.contribution) for r in d.reasons] == [("BLOCK_LIST_DEVICE_ID", 1.0)]
    assert (d.ml_score, d.model_version, d.confidence) == (None, None, 1.0)
    assert d.degraded == tuple(degraded)


@pytest.mark.parametrize(("with_model", "degraded", "confidence"), [
    (True, (), 1.0),
    (False, ("model: ModelUnavailable: down",), 0.5),
    (True, ("features: ConnectionError: down",), 0.75),
    (False, ("features: ConnectionError: down", "model: ModelUnavailable: down"), 0.375),
])
def test_confidence_halves_without_the_model_and_loses_a_quarter_without_history(
        policy: Policy, with_model: bool, degraded: tuple[str, ...], confidence: float) -> None:
    # 0.45 is 0.15 from both neighbouring thresholds: a confident call when whole.
    d = decision(policy, hit("R", 0.45), ml=model(0.0) if with_model else None,
                 degraded=degraded)
    assert d.confidence == confidence


@pytest.mark.parametrize(("risk", "confidence"), [(0.3, 0.5), (0.375, 0.75), (0.25, 0.6667),
                                                  (0.95, 1.0)])
def test_confidence_is_lowest_on_a_threshold(policy: Policy, risk: float,
                                             confidence: float) -> None:
    assert decision(policy, hit("R", risk), ml=model(0.0)).confidence == confidence


def test_reasons_are_sorted_by_contribution_with_the_models_factors(policy: Policy) -> None:
    factors = (Factor("card_nb_small_tx_1h", 3.0, 0.0, 0.3),
               Factor("tx_amount", 900.0, 40.0, 0.05),
               Factor("is_new_device", 1.0, 0.0, 0.02),
               Factor("is_new_ip", 1.0, 0.0, 0.01))  # a fourth: over top_factors = 3
    d = decision(policy, hit("SMALL", 0.1), hit("LARGE", 0.4), ml=model(0.5, *factors))
    assert [(r.code, round(r.contribution, 4)) for r in d.reasons] == [
        ("LARGE", 0.4),
        ("ML_SCORE", 0.35),
        ("ML_CARD_NB_SMALL_TX_1H", 0.21),
        ("SMALL", 0.1),
        ("ML_TX_AMOUNT", 0.035),
        ("ML_IS_NEW_DEVICE", 0.014),
    ]
    by_code = {r.code: r.text for r in d.reasons}
    assert by_code["ML_SCORE"] == "fraud model v7: probability 0.50, weighted x0.7"
    assert by_code["ML_CARD_NB_SMALL_TX_1H"] == (
        "card_nb_small_tx_1h = 3 (typical 0) raised the fraud probability by 0.30")
    assert by_code["ML_TX_AMOUNT"] == (
        "tx_amount = 900 (typical 40) raised the fraud probability by 0.05")


def test_the_decision_records_the_policy_version(policy: Policy) -> None:
    assert decision(policy).policy_version == "2026-11-21.1"
