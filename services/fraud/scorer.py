"""The scoring pipeline: features + velocity -> rules -> model -> decision, for one or many.

    scorer.score([txn], path="http")       # the HTTP path: one transaction
    scorer.score(batch, path="stream")     # the stream scorer: one Redis round trip and one
                                           # ONNX call for the whole batch

Degraded, never down: the feature store behind a deadline and a circuit breaker, the model
behind its own errors. Without the card's history the transaction is decided on itself (its
own features, history features at their typical values, the rules that need no history);
without the model, on the rules alone. Either way the decision says so in `degraded`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import TypeAdapter

from services.common.breaker import CircuitBreaker, CircuitOpen
from services.common.catalog import FRAUD_FEATURE_NAMES, FRAUD_REFERENCE_FILE
from services.common.fraud_online import FeatureVector, FraudState, fraud_features
from services.common.models import ModelClient, ModelError, ModelRepository
from services.fraud.decide import FEATURES_MISSING, MODEL_MISSING, Decision, decide
from services.fraud.explain import ModelVerdict, Reference, reference_from_json, verdicts
from services.fraud.facts import (
    OWN_FEATURES,
    Fact,
    feature_facts,
    transaction_facts,
    velocity_facts,
)
from services.fraud.metrics import FraudMetrics
from services.fraud.rules import RuleEngine
from services.fraud.state_store import FraudStore, StateRead
from services.fraud.transaction import ScoredTransaction

logger = logging.getLogger(__name__)
ScoringPath = Literal["http", "stream"]
DECISION_JSON = TypeAdapter(Decision)
HISTORY_COLUMNS = np.array([name not in OWN_FEATURES for name in FRAUD_FEATURE_NAMES])


@dataclass(frozen=True)
class Scored:
    transaction: ScoredTransaction
    decision: Decision
    features: FeatureVector | None  # what the model saw; None when the decision was replayed
    replayed: bool                  # the decision made earlier for this transaction id


class ReferenceCache:
    """Each model version's typical values, read once from the repository; None where a version
    has none (then decisions carry no ML factors, and degraded vectors keep empty history)."""

    def __init__(self, repository: ModelRepository | None, model_name: str) -> None:
        self._repository = repository
        self._model_name = model_name
        self._by_version: dict[int, Reference | None] = {}
        self.current: Reference | None = None

    def observe(self, version: int) -> None:
        """The version that answered; its reference is used from the next call on."""
        if version not in self._by_version:
            self._by_version[version] = self._load(version)
        self.current = self._by_version[version]

    def _load(self, version: int) -> Reference | None:
        if self._repository is None:
            return None
        try:
            path = self._repository.extra_file(self._model_name, version, FRAUD_REFERENCE_FILE)
            return reference_from_json(json.loads(path.read_text()), FRAUD_FEATURE_NAMES)
        except (OSError, ValueError, KeyError, ModelError) as exc:
            logger.warning("no reference for model version: decisions carry no ML factors",
                           extra={"model": self._model_name, "version": version,
                                  "error": str(exc)})
            return None


class FraudScorer:
    def __init__(self, *, store: FraudStore, model: ModelClient,
                 policy: Callable[[], RuleEngine], references: ReferenceCache,
                 metrics: FraudMetrics, breaker: CircuitBreaker,
                 model_name: str = "fraud", idempotency_window_s: int = 60) -> None:
        self._store = store
        self._model = model
        self._policy = policy
        self._references = references
        self._metrics = metrics
        self._breaker = breaker
        self._model_name = model_name
        self._window_s = idempotency_window_s

    def warm_up(self) -> None:
        """Learn the production version (and so its reference) before the first request."""
        self._predict(np.zeros((1, len(FRAUD_FEATURE_NAMES)), dtype=np.float32), None)

    def score(self, transactions: Sequence[ScoredTransaction], path: ScoringPath) -> list[Scored]:
        engine = self._policy()
        self._metrics.batch_size.labels(path).observe(len(transactions))
        with self._stage("features", path):
            reads, store_down = self._read(transactions)
            earlier = [_replayed(r) for r in reads] if reads else [None] * len(transactions)
            todo = [i for i, e in enumerate(earlier) if e is None]
            states = [reads[i].state if reads else FraudState() for i in todo]
            vectors = self._vectors([transactions[i] for i in todo], states, store_down)
        with self._stage("rules", path):
            facts = [self._facts(transactions[i], states[k], vectors[k], store_down)
                     for k, i in enumerate(todo)]
            judged = [(engine.listed(f), engine.hits(f)) for f in facts]
        with self._stage("model", path):
            models, model_down = self._predict(vectors, engine) if todo else ([], None)
        with self._stage("decide", path):
            degraded = [why for why in (store_down, model_down) if why is not None]
            fresh = {i: decide(engine.policy, listed=judged[k][0], hits=judged[k][1],
                               model=models[k] if models else None, degraded=degraded,
                               amount=transactions[i].amount)
                     for k, i in enumerate(todo)}
            fresh = self._remember(transactions, fresh, store_down)
        row_of = {i: k for k, i in enumerate(todo)}
        scored = [Scored(txn, fresh[i], vectors[row_of[i]], False) if i in fresh
                  else Scored(txn, _known(earlier[i]), None, True)
                  for i, txn in enumerate(transactions)]
        self._count(scored, path, store_down, model_down)
        return scored

    @contextmanager
    def _stage(self, stage: str, path: ScoringPath) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._metrics.stage.labels(stage, path).observe(time.perf_counter() - start)

    def _read(self, transactions: Sequence[ScoredTransaction]
              ) -> tuple[list[StateRead] | None, str | None]:
        try:
            return self._breaker.call(self._store.record_and_read, transactions), None
        except CircuitOpen:
            return None, f"{FEATURES_MISSING}: feature store skipped (circuit open)"
        except Exception as exc:  # any failure of the store degrades; it never fails the call
            logger.warning("feature store failed", extra={"error": repr(exc)})
            return None, f"{FEATURES_MISSING}: {type(exc).__name__}: {exc}"

    def _vectors(self, transactions: Sequence[ScoredTransaction],
                 states: Sequence[FraudState], store_down: str | None) -> np.ndarray:
        vectors = np.empty((len(transactions), len(FRAUD_FEATURE_NAMES)), dtype=np.float32)
        for row, (txn, state) in enumerate(zip(transactions, states, strict=True)):
            vectors[row] = fraud_features(txn, state)
        reference = self._references.current
        if store_down is not None and reference is not None and len(vectors):
            # No history: assume a typical card rather than a brand-new one.
            vectors[:, HISTORY_COLUMNS] = reference.values[HISTORY_COLUMNS]
        return vectors

    @staticmethod
    def _facts(txn: ScoredTransaction, state: FraudState, vector: FeatureVector,
               store_down: str | None) -> dict[str, Fact]:
        with_history = store_down is None
        facts = transaction_facts(txn)
        facts.update(feature_facts(vector, FRAUD_FEATURE_NAMES, with_history=with_history))
        if with_history:
            facts.update(velocity_facts(txn, state))
        return facts

    def _predict(self, vectors: np.ndarray, engine: RuleEngine | None
                 ) -> tuple[list[ModelVerdict], str | None]:
        reference = self._references.current
        top = engine.policy.combine.top_factors if engine is not None else 0
        try:
            rows = reference.rows(vectors) if reference is not None else vectors
            prediction = self._model.predict(self._model_name, rows)
            version = prediction.model_version
            probabilities = prediction.outputs["probabilities"][:, 1]
            found = verdicts(vectors, probabilities, version, reference, top)
        except Exception as exc:  # ModelError or anything else: decide on the rules alone
            if not isinstance(exc, ModelError):
                logger.exception("model call failed unexpectedly")
            return [], f"{MODEL_MISSING}: {type(exc).__name__}: {exc}"
        self._references.observe(version)
        return found, None

    def _remember(self, transactions: Sequence[ScoredTransaction], fresh: dict[int, Decision],
                  store_down: str | None) -> dict[int, Decision]:
        """Record each new decision for the idempotency window; where another request for the
        same id recorded one first, that one is the answer (the first decision wins)."""
        if store_down is not None or not fresh:
            return fresh
        pairs = [(transactions[i].transaction_id, DECISION_JSON.dump_json(d))
                 for i, d in fresh.items()]
        try:
            earlier = self._breaker.call(self._store.remember, pairs, self._window_s)
        except Exception as exc:  # not remembered: a retry within the window is scored anew
            logger.warning("decision not recorded for idempotency", extra={"error": repr(exc)})
            return fresh
        return {i: _known(e) if e is not None else d
                for (i, d), e in zip(fresh.items(), earlier, strict=True)}

    def _count(self, scored: Sequence[Scored], path: ScoringPath, store_down: str | None,
               model_down: str | None) -> None:
        metrics = self._metrics
        for item in scored:
            if item.replayed:
                metrics.replays.inc()
                continue
            decision = item.decision
            metrics.decisions.labels(decision.action, path).inc()
            metrics.risk.observe(decision.risk_score)
            for rule in decision.rule_hits:
                metrics.rule_hits.labels(rule).inc()
        fresh = sum(1 for item in scored if not item.replayed)
        if store_down is not None:
            metrics.degraded.labels("features").inc(fresh)
        if model_down is not None:
            metrics.degraded.labels("model").inc(fresh)


def _replayed(read: StateRead) -> Decision | None:
    return _known(read.earlier_decision) if read.earlier_decision is not None else None


def _known(stored: bytes | Decision | None) -> Decision:
    if isinstance(stored, Decision):
        return stored
    assert stored is not None
    return DECISION_JSON.validate_json(stored)

