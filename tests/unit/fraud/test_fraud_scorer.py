"""FraudScorer on fakes: idempotent replays, degraded decisions without the feature store or the
model, a batch of which the store skipped some, and one store round trip and one model call per
batch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.common.drift_monitor import DriftMonitor
from services.common.models import ModelRepository, ModelUnavailable, Prediction
from services.common.models.testing import logistic_model
from services.common.telemetry import Metrics
from services.designs.fraud.features import fraud_features
from services.designs.fraud.state import FraudState
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.fraud.metrics import FraudMetrics
from services.fraud.policy_file import load_engine
from services.fraud.scorer import HISTORY_COLUMNS, FraudScorer, ReferenceCache, Scored
from services.fraud.state_store import FraudStoreUnavailable
from services.fraud.transaction import Transaction
from tests.support.fraud import (
    AMOUNT,
    AWAY_1000_KM,
    CARD_TESTING,
    DAY,
    MINUTE,
    MODEL_VERSION,
    POLICY_PATH,
    SHADOW_PROBABILITY,
    TYPICAL_VALUES,
    FakeModel,
    FakeStore,
    history,
    model_repository,
    transaction,
    use,
)

SHADOW_VERSION = 2  # a challenger FakeModel answers for with SHADOW_PROBABILITY










@dataclass
class Rig:
    scorer: FraudScorer
    store: FakeStore
    model: FakeModel
    registry: CollectorRegistry

    def score(self, *transactions: Transaction) -> list[Scored]:
        return self.scorer.score(list(transactions), "http")

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(f"fraud_test_{name}", labels) or 0.0


def rig(tmp_path: Path, *, states: dict[str, FraudState] | None = None, warm: bool = True,
        shadow_version: int | None = None) -> Rig:
    registry = CollectorRegistry()
    engine = load_engine(POLICY_PATH)
    store, model = FakeStore(states), FakeModel()
    scorer = FraudScorer(
        store=store, model=model, policy=lambda: engine,
        references=ReferenceCache(model_repository(tmp_path), "fraud"),
        metrics=FraudMetrics(Metrics("fraud_test", registry)),
        idempotency_window_s=60, shadow_version=shadow_version)
    if warm:
        scorer.warm_up()
    return Rig(scorer, store, model, registry)


def codes(scored: Scored) -> list[str]:
    return [reason.code for reason in scored.decision.reasons]


def test_a_card_testing_burst_is_declined_with_the_rule_and_the_models_factors(
        tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    (scored,) = r.score(transaction())
    d = scored.decision
    expected_ml = 0.05 + 0.2 * 3 + 0.0002 * 50
    assert d.ml_score == pytest.approx(expected_ml, abs=1e-6)
    assert d.model_version == MODEL_VERSION
    assert d.rule_hits == ("CARD_TESTING",)
    assert d.risk_score == 1.0
    assert (d.risk_level, d.action, d.degraded) == ("critical", "decline", ())
    # The fake model reads two features; each raised the score from its typical value.
    assert codes(scored) == ["CARD_TESTING", "ML_SCORE", "ML_CARD_NB_SMALL_TX_1H", "ML_TX_AMOUNT"]
    factor = next(r for r in d.reasons if r.code == "ML_CARD_NB_SMALL_TX_1H")
    assert factor.contribution == pytest.approx(0.7 * 0.6, abs=1e-6)
    assert factor.text == ("card_nb_small_tx_1h = 3 (typical 0) raised the fraud probability "
                           "by 0.60")
    assert not scored.replayed
    assert scored.features is not None
    np.testing.assert_array_equal(scored.features, fraud_features(transaction(), CARD_TESTING))
    assert r.metric("decisions_total", action="decline", path="http") == 1
    assert r.metric("rule_hits_total", rule="CARD_TESTING") == 1


def test_a_repeated_transaction_id_is_replayed_with_the_identical_decision(
        tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    (first,) = r.score(transaction())
    model_calls = len(r.model.calls)
    (second,) = r.score(transaction())
    assert second.replayed
    assert second.decision == first.decision
    assert first.features is not None and second.features is not None
    np.testing.assert_array_equal(second.features, first.features)  # as recorded: the same event
    assert len(r.model.calls) == model_calls  # nothing was scored again
    assert r.store.remembered == [["tx100"]]
    assert r.store.windows == [60]
    assert r.metric("idempotent_replays_total") == 1
    assert r.metric("decisions_total", action="decline", path="http") == 1


def test_when_two_requests_race_the_first_recorded_decision_is_the_answer(
        tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    (first,) = r.score(transaction())
    r.store.decisions_visible_on_read = False
    r.store.states["tx100"] = FraudState()  # scored anew, this one would be approved
    (second,) = r.score(transaction())
    assert second.decision == first.decision
    assert second.decision.action == "decline"


def test_a_decision_that_could_not_be_recorded_is_still_given(tmp_path: Path) -> None:
    r = rig(tmp_path)

    def refuse(decisions: Sequence[tuple[str, bytes]], window_s: int) -> list[bytes | None]:
        raise FraudStoreUnavailable("TimeoutError: Timeout reading from socket")

    r.store.remember = refuse  # type: ignore[method-assign]
    (scored,) = r.score(transaction())
    assert scored.decision.action == "approve"
    assert scored.decision.degraded == ()


def test_without_the_feature_store_the_transaction_is_decided_on_itself(tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    r.store.failure = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
    (scored,) = r.score(transaction(amount=1500.0, merchant_category="online_gaming"))
    d = scored.decision
    assert d.degraded == ("features: ConnectionError: Error 111 connecting to 127.0.0.1:6379",)
    assert set(d.rule_hits) == {"AMOUNT_HIGH", "RISKY_MERCHANT_CATEGORY"}  # no history rule
    assert d.ml_score is not None
    assert d.action in {"approve", "review", "decline"}
    assert r.store.remembered == []  # the store is down: nothing to record in
    assert scored.features is not None
    # History features at the reference's typical values, the transaction's own as they are.
    np.testing.assert_array_equal(scored.features[HISTORY_COLUMNS],
                                  TYPICAL_VALUES[HISTORY_COLUMNS])
    assert scored.features[AMOUNT] == 1500.0
    assert r.metric("degraded_decisions_total", dependency="features") == 1


def test_a_batch_is_decided_whole_except_the_transactions_the_store_skipped(
        tmp_path: Path) -> None:
    """A Redis master's breaker is open: the store skips the transactions with a key on it. They
    are decided without history and say why; the rest of the batch keeps its history, its
    decisions are recorded, and the answers come back in the batch's order."""
    r = rig(tmp_path, states={"tx1": CARD_TESTING, "tx2": CARD_TESTING, "tx3": CARD_TESTING})
    why = "feature store skipped (circuit open: 127.0.0.1:7002)"
    r.store.skipping = {"tx2": why}
    scored = r.score(*(transaction(transaction_id=f"tx{i}") for i in (1, 2, 3)))
    assert [s.transaction.transaction_id for s in scored] == ["tx1", "tx2", "tx3"]
    assert [s.decision.degraded for s in scored] == [(), (f"features: {why}",), ()]
    assert scored[0].decision.rule_hits == scored[2].decision.rule_hits == ("CARD_TESTING",)
    assert "CARD_TESTING" not in scored[1].decision.rule_hits  # its history was not read
    skipped = scored[1].features
    assert skipped is not None
    np.testing.assert_array_equal(skipped[HISTORY_COLUMNS], TYPICAL_VALUES[HISTORY_COLUMNS])
    assert r.store.reads == [["tx1", "tx2", "tx3"]]  # one round trip for the batch
    assert r.store.remembered == [["tx1", "tx3"]]     # nowhere to record the skipped one
    assert r.metric("degraded_decisions_total", dependency="features") == 1
    assert r.metric("decisions_total", action="decline", path="http") == 2


def test_a_batch_all_skipped_is_decided_degraded_without_failing(tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx1": CARD_TESTING})
    r.store.skipping = {"tx1": "feature store skipped (circuit open: redis)"}
    (scored,) = r.score(transaction(transaction_id="tx1"))
    assert scored.decision.degraded == ("features: feature store skipped (circuit open: redis)",)
    assert r.store.remembered == []


def test_without_the_model_the_rules_decide_alone(tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    r.model.failure = ModelUnavailable("no production version of fraud")
    (scored,) = r.score(transaction())
    d = scored.decision
    assert (d.ml_score, d.model_version) == (None, None)
    assert d.degraded == ("model: ModelUnavailable: no production version of fraud",)
    assert d.rule_hits == ("CARD_TESTING",)
    assert (d.risk_score, d.risk_level, d.action) == (0.6, "high", "review")
    assert codes(scored) == ["CARD_TESTING"]
    assert d.confidence == 0.25  # on the high threshold (0.5), halved without the model
    assert r.metric("degraded_decisions_total", dependency="model") == 1


def test_an_unexpected_model_error_degrades_too(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.model.failure = RuntimeError("boom")
    (scored,) = r.score(transaction())
    assert scored.decision.degraded == ("model: RuntimeError: boom",)
    assert scored.decision.action == "approve"  # open stand-in policy, 50 <= 500


def test_a_batch_is_one_store_round_trip_and_one_model_call(tmp_path: Path) -> None:
    states = {"tx1": CARD_TESTING,
              "tx3": history(use(10 * MINUTE, place=AWAY_1000_KM), use(DAY))}
    r = rig(tmp_path, states=states)
    calls_before = len(r.model.calls)
    scored = r.score(*(transaction(transaction_id=f"tx{i}") for i in (1, 2, 3)))
    assert r.store.reads == [["tx1", "tx2", "tx3"]]
    # one call scores the batch; one more explains the two declines (not the approval)
    features = len(FRAUD_FEATURE_NAMES)
    assert [c.shape for c in r.model.calls[calls_before:]] == [
        (3, features), (2 * (1 + features), features)]
    assert r.store.remembered == [["tx1", "tx2", "tx3"]]
    assert [s.transaction.transaction_id for s in scored] == ["tx1", "tx2", "tx3"]
    assert [s.decision.rule_hits for s in scored] == [
        ("CARD_TESTING",), (), ("IMPOSSIBLE_TRAVEL",)]
    assert [s.decision.action for s in scored] == ["decline", "approve", "decline"]
    assert r.registry.get_sample_value("fraud_test_batch_size_transactions_sum",
                                       {"path": "http"}) == 3


def test_a_batch_scores_only_the_transactions_not_decided_before(tmp_path: Path) -> None:
    r = rig(tmp_path)
    (earlier,) = r.score(transaction(transaction_id="tx1"))
    calls_before = len(r.model.calls)
    first, second = r.score(transaction(transaction_id="tx1"), transaction(transaction_id="tx2"))
    assert (first.replayed, second.replayed) == (True, False)
    assert first.decision == earlier.decision
    assert [c.shape for c in r.model.calls[calls_before:]] == [(1, len(FRAUD_FEATURE_NAMES))]
    assert r.store.remembered[-1] == ["tx2"]


def test_an_approval_carries_no_ml_factors_until_asked_for_them(tmp_path: Path) -> None:
    r = rig(tmp_path)
    (approved,) = r.score(transaction(amount=900.0))
    assert approved.decision.action == "approve"
    assert [c for c in codes(approved) if c.startswith("ML_")] == ["ML_SCORE"]
    explained = r.scorer.explain("tx100")
    assert explained is not None
    decision, computed_now = explained
    assert computed_now
    assert "ML_TX_AMOUNT" in [reason.code for reason in decision.reasons]
    assert decision.action == approved.decision.action
    assert decision.risk_score == approved.decision.risk_score
    assert r.scorer.explain("never-seen") is None


def test_a_decline_is_explained_when_made_and_not_again(tmp_path: Path) -> None:
    r = rig(tmp_path, states={"tx100": CARD_TESTING})
    (declined,) = r.score(transaction())
    assert "ML_CARD_NB_SMALL_TX_1H" in codes(declined)
    calls = len(r.model.calls)
    explained = r.scorer.explain("tx100")
    assert explained == (declined.decision, False)
    assert len(r.model.calls) == calls


def test_the_first_decision_is_explained_warm_or_cold(tmp_path: Path) -> None:
    # the call that scores the batch names the version, whose reference then explains it
    cold = rig(tmp_path / "cold", states={"tx100": CARD_TESTING}, warm=False)
    assert "ML_CARD_NB_SMALL_TX_1H" in codes(cold.score(transaction())[0])
    warm = rig(tmp_path / "warm", states={"tx100": CARD_TESTING})
    assert "ML_CARD_NB_SMALL_TX_1H" in codes(warm.score(transaction())[0])


def test_whole_vectors_and_their_scores_feed_the_drift_window_and_degraded_ones_do_not(
        tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "drift")
    rng = np.random.default_rng(0)
    training = rng.random((1000, len(FRAUD_FEATURE_NAMES)))
    repository.register(
        "fraud", logistic_model([0.0] * len(FRAUD_FEATURE_NAMES)),
        feature_names=FRAUD_FEATURE_NAMES, metrics={}, training_data_hash="test",
        description="drift", extra_files={DRIFT_REFERENCE_FILE: DriftReference.of(
            training, FRAUD_FEATURE_NAMES, rng.random(1000)).to_json().encode()})
    r = rig(tmp_path)
    registry = CollectorRegistry()
    monitor = DriftMonitor(repository=repository, model_name="fraud",
                           feature_names=FRAUD_FEATURE_NAMES,
                           metrics=Metrics("fraud_drift", registry), window=100, min_rows=1)
    r.scorer._drift = monitor
    r.score(*(transaction(transaction_id=f"tx{i}") for i in range(3)))
    assert registry.get_sample_value("fraud_drift_drift_window_rows") == 3
    assert registry.get_sample_value("fraud_drift_drift_psi", {"column": "score"}) is not None
    r.store.failure = redis.ConnectionError("connection refused")
    r.score(transaction(transaction_id="tx9"))
    window = monitor._windows[MODEL_VERSION]
    assert window is not None and window.rows == 3       # stand-in history: not observed


def test_a_shadow_challenger_decides_the_same_transactions_and_production_is_unchanged(
        tmp_path: Path) -> None:
    plain = rig(tmp_path / "plain")
    shadowed = rig(tmp_path / "shadowed", shadow_version=SHADOW_VERSION)
    quiet = transaction(transaction_id="tx-quiet")

    (alone,) = plain.score(quiet)
    (scored,) = shadowed.score(quiet)

    assert scored.decision == alone.decision  # production's decision, whatever the shadow says
    assert scored.decision.action == "approve"
    shadow = scored.shadow
    assert shadow is not None
    assert shadow.model_version == SHADOW_VERSION
    assert shadow.ml_score == pytest.approx(SHADOW_PROBABILITY)
    assert shadow.action == "decline"  # the model alone declines at the policy's ml_decline_at
    assert shadow.rule_hits == scored.decision.rule_hits
    recorded = json.loads(shadowed.store.decisions["tx-quiet"])["decision"]
    assert recorded["model_version"] == MODEL_VERSION  # the shadow is never recorded
    assert shadowed.metric("shadow_decisions_total", outcome="disagreed") == 1
    assert alone.shadow is None and plain.metric("shadow_decisions_total",
                                                 outcome="disagreed") == 0


def test_a_failing_shadow_costs_only_its_own_decisions(tmp_path: Path) -> None:
    r = rig(tmp_path, shadow_version=SHADOW_VERSION)
    original = r.model.predict

    def production_only(model_name: str, rows: npt.NDArray[Any], *,
                        version: int | None = None) -> Prediction:
        if version == SHADOW_VERSION:
            raise ModelUnavailable("the challenger is not loaded")
        return original(model_name, rows, version=version)

    r.model.predict = production_only  # type: ignore[method-assign]
    (scored,) = r.score(transaction(transaction_id="tx-f"))
    assert scored.shadow is None
    assert scored.decision.model_version == MODEL_VERSION and not scored.decision.degraded
    assert r.metric("shadow_decisions_total", outcome="failed") == 1


def test_a_replayed_transaction_gets_no_second_shadow_decision(tmp_path: Path) -> None:
    r = rig(tmp_path, shadow_version=SHADOW_VERSION)
    (first,) = r.score(transaction())
    (again,) = r.score(transaction())
    assert first.shadow is not None and again.replayed and again.shadow is None
