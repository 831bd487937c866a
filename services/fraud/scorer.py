"""The scoring pipeline: features + velocity -> rules -> model -> decision, for one or many.

    scorer.score([txn], path="http")       # the HTTP path: one transaction
    scorer.score(batch, path="stream")     # the stream scorer: one Redis round trip and one
                                           # ONNX call for the whole batch

Degraded, never down: the feature store behind a deadline and its circuit breakers (one per
Redis Cluster master, in the store), the model behind its own errors. Without the card's history
the transaction is decided on itself (its own features, history features at their typical
values, the rules that need no history); without the model, on the rules alone. Either way the
decision says so in `degraded`. A batch of which the store skipped some transactions (their
master's breaker open) is decided in two parts: those degraded, the rest whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import TypeAdapter

from services.common.drift_monitor import DriftMonitor
from services.common.models import ModelClient, ModelError, ModelRepository
from services.designs.fraud.features import FeatureVector, batch_features
from services.designs.fraud.state import FraudState, StateBatch
from services.designs.model_features import FRAUD_FEATURE_NAMES, FRAUD_REFERENCE_FILE
from services.fraud.decide import (
    FEATURES_MISSING,
    MODEL_MISSING,
    Decision,
    decide,
    factor_reasons,
)
from services.fraud.explain import ModelVerdict, Reference, reference_from_json, verdicts
from services.fraud.facts import OWN_FEATURES, fact_table
from services.fraud.metrics import FraudMetrics
from services.fraud.rules import RuleEngine
from services.fraud.state_store import FraudStore, FraudStoreUnavailable, StateRead
from services.fraud.transaction import ScoredTransaction

logger = logging.getLogger(__name__)
ScoringPath = Literal["http", "stream"]
HISTORY_COLUMNS = np.array([name not in OWN_FEATURES for name in FRAUD_FEATURE_NAMES])


@dataclass(frozen=True)
class Scored:
    transaction: ScoredTransaction
    decision: Decision
    features: FeatureVector | None  # what the model saw (a replay: as recorded); None: unknown
    replayed: bool                  # the decision made earlier for this transaction id
    shadow: Decision | None = None  # the challenger's, never acted on (shadow_version set)
    # the store recorded it in the online state (False: its round trip failed or was skipped,
    # and it was decided without its history; the stream hands it to the state writer)
    recorded: bool = True


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


@dataclass(frozen=True)
class Recorded:
    """What the idempotency window keeps per transaction id: the decision, and the features the
    model saw, from which its ML factors can be computed later (explain)."""

    decision: Decision
    features: tuple[float, ...] | None


RECORDED_JSON = TypeAdapter(Recorded)


@dataclass(frozen=True)
class SplitBatch:
    """A batch split where the idempotency window already holds a decision: the replays, by
    their position in the batch, and the positions still to decide, in batch order."""

    transactions: Sequence[ScoredTransaction]
    replays: dict[int, Recorded]
    to_decide: list[int]

    @classmethod
    def of(cls, transactions: Sequence[ScoredTransaction], read: StateRead | None) -> SplitBatch:
        """Without a read (the store is down) nothing is known to be decided: all are to decide."""
        stored = (read.earlier_decisions if read is not None else [None] * len(transactions))
        replays = {position: RECORDED_JSON.validate_json(decision)
                   for position, decision in enumerate(stored) if decision is not None}
        to_decide = [position for position in range(len(transactions))
                     if position not in replays]
        return cls(transactions, replays, to_decide)

    @property
    def transactions_to_decide(self) -> list[ScoredTransaction]:
        return [self.transactions[position] for position in self.to_decide]

    def merge(self, decisions: Sequence[Decision], vectors: np.ndarray,
              shadows: Sequence[Decision | None], recorded: bool = True) -> list[Scored]:
        """Every transaction in batch order: a replay with its earlier decision, the others with
        theirs (decisions[i], vectors[i] and shadows[i] are those of the i-th transaction to
        decide). A replay gets no shadow decision: the challenger saw it the first time; it
        carries the features recorded with its decision, so publishing it again repeats the
        first event exactly. `recorded`: whether the store recorded the ones decided now."""
        decided_now = iter(zip(decisions, vectors, shadows, strict=True))
        scored = []
        for position, txn in enumerate(self.transactions):
            if position in self.replays:
                earlier = self.replays[position]
                features = (None if earlier.features is None
                            else np.asarray(earlier.features, dtype=vectors.dtype))
                scored.append(Scored(txn, earlier.decision, features, True))
            else:
                decision, vector, shadow = next(decided_now)
                scored.append(Scored(txn, decision, vector, False, shadow, recorded))
        return scored


class FraudScorer:
    def __init__(self, *, store: FraudStore, model: ModelClient,
                 policy: Callable[[], RuleEngine], references: ReferenceCache,
                 metrics: FraudMetrics,
                 model_name: str = "fraud", idempotency_window_s: int = 60,
                 drift: DriftMonitor | None = None, shadow_version: int | None = None) -> None:
        self._store = store
        self._model = model
        self._policy = policy
        self._references = references
        self._metrics = metrics
        self._model_name = model_name
        self.idempotency_window_s = idempotency_window_s
        self._drift = drift
        self._shadow_version = shadow_version

    def warm_up(self) -> None:
        """Learn the production version (and so its reference) before the first request."""
        self._predict(np.zeros((1, len(FRAUD_FEATURE_NAMES)), dtype=np.float32))

    def score(self, transactions: Sequence[ScoredTransaction], path: ScoringPath) -> list[Scored]:
        """Decide every transaction of the batch; one that was decided before gets that decision
        back (`replayed`). Each stage runs once for the whole batch, as arrays.

        The store's one round trip records the batch and reads both the cards' state and the
        decisions already made; the batch splits there into replays and transactions to decide,
        only those are decided, and the two are merged back in the batch's order."""
        engine = self._policy()
        self._metrics.batch_size.labels(path).observe(len(transactions))
        start = time.perf_counter()
        read, store_down = self._read(transactions)
        read_s = time.perf_counter() - start  # the features stage's, counted once a batch
        if read is None or not read.skipped:
            return self._score_read(transactions, read, store_down, engine, path, read_s)
        return self._score_in_parts(transactions, read, engine, path, read_s)

    def _score_in_parts(self, transactions: Sequence[ScoredTransaction], read: StateRead,
                        engine: RuleEngine, path: ScoringPath, read_s: float) -> list[Scored]:
        """The store skipped some (their master's breaker is open): the rest are decided whole,
        each group of skipped ones degraded with its reason, all back in the batch's order."""
        groups: dict[str | None, list[int]] = {}
        for position in range(len(transactions)):
            groups.setdefault(read.skipped.get(position), []).append(position)
        scored: list[Scored | None] = [None] * len(transactions)
        for why, positions in groups.items():
            part = [transactions[p] for p in positions]
            for position, item in zip(positions, self._score_read(
                    part, read if why is None else None,
                    None if why is None else f"{FEATURES_MISSING}: {why}", engine, path,
                    read_s), strict=True):
                scored[position] = item
            read_s = 0.0
        return [item for item in scored if item is not None]

    def _score_read(self, transactions: Sequence[ScoredTransaction], read: StateRead | None,
                    store_down: str | None, engine: RuleEngine, path: ScoringPath,
                    read_s: float) -> list[Scored]:
        """The batch decided on what was read for it (None: nothing, `store_down` says why);
        `read_s`: the time the read took, counted in the features stage."""
        with self._stage("features", path, read_s):
            batch = SplitBatch.of(transactions, read)
            vectors, velocity = self._vectors(transactions, read, store_down, batch.to_decide)
        decisions, shadows, model_down = self._decide(batch.transactions_to_decide, vectors,
                                                      velocity, engine, store_down, path)
        with self._stage("record", path):
            decisions = self._remember(batch.transactions_to_decide, decisions, vectors,
                                       store_down)
        scored = batch.merge(decisions, vectors, shadows, recorded=store_down is None)
        self._count(scored, path, store_down, model_down)
        return scored

    def _decide(self, transactions: Sequence[ScoredTransaction], vectors: np.ndarray,
                velocity: np.ndarray, engine: RuleEngine, store_down: str | None,
                path: ScoringPath
                ) -> tuple[list[Decision], list[Decision | None], str | None]:
        """A decision per transaction (row i of `vectors` and `velocity` is transactions[i]),
        the shadow challenger's (None without one), and why the model was not asked, if it
        was not."""
        with self._stage("rules", path):
            facts = fact_table(transactions, vectors, velocity, with_history=store_down is None)
            listed, hits = engine.listed_table(facts), engine.hits_table(facts)
        with self._stage("model", path):
            model_verdicts, model_down = (self._predict(vectors) if len(transactions)
                                          else ([], None))
        # Drift compares whole vectors only: a batch without the card's history has stand-in
        # values that would read as a shift.
        if self._drift is not None and model_verdicts and store_down is None:
            self._drift.observe(model_verdicts[0].version, vectors,
                                [v.score for v in model_verdicts])
        degraded = [why for why in (store_down, model_down) if why is not None]

        def decided(row: int, model: ModelVerdict | None) -> Decision:
            return decide(engine.policy, listed=listed[row], hits=hits[row], model=model,
                          degraded=degraded, amount=transactions[row].amount)

        with self._stage("decide", path):
            decisions = [decided(row, model_verdicts[row] if model_verdicts else None)
                         for row in range(len(transactions))]
        with self._stage("shadow", path):
            shadows = self._shadows(vectors, decisions, decided)
        with self._stage("explain", path):
            # ML factors for the decisions someone reads: reviews and declines. An approval's
            # are computed on demand from its recorded features (explain).
            to_explain = [row for row, d in enumerate(decisions)
                          if d.action != "approve" and d.ml_score is not None]
            explained = self._factors(vectors[to_explain], model_verdicts, to_explain, engine)
            for row, model in zip(to_explain, explained, strict=True):
                decisions[row] = decided(row, model)
        return decisions, shadows, model_down

    def _shadows(self, vectors: np.ndarray, decisions: Sequence[Decision],
                 decided: Callable[[int, ModelVerdict], Decision]) -> list[Decision | None]:
        """The challenger's decisions on the same rows: the same vectors, rules, lists and
        policy, only its model differs, so a difference is the model's. They are never
        recorded nor answered; the stream publishes them to their own topic. A challenger that
        fails costs its own decisions, never production's."""
        if self._shadow_version is None or not decisions:
            return [None] * len(decisions)
        try:
            prediction = self._model.predict(self._model_name, vectors,
                                             version=self._shadow_version)
        except Exception as exc:  # the shadow's failure is counted, never the decision's
            self._metrics.shadow.labels("failed").inc(len(decisions))
            logger.warning("shadow model failed", extra={"version": self._shadow_version,
                                                         "error": repr(exc)})
            return [None] * len(decisions)
        probabilities = prediction.outputs["probabilities"][:, 1]
        shadows = [decided(row, ModelVerdict(float(p), prediction.model_version, ()))
                   for row, p in enumerate(probabilities)]
        agreed = sum(s.action == d.action for s, d in zip(shadows, decisions, strict=True))
        self._metrics.shadow.labels("agreed").inc(agreed)
        self._metrics.shadow.labels("disagreed").inc(len(shadows) - agreed)
        return list(shadows)

    def explain(self, transaction_id: str) -> tuple[Decision, bool] | None:
        """The recorded decision for this transaction id while the window keeps it, with its ML
        factors (with_factors); None: nothing recorded."""
        recorded = self.recall(transaction_id)
        return None if recorded is None else self.with_factors(recorded)

    def recall(self, transaction_id: str) -> Recorded | None:
        """The decision and features the idempotency window keeps for this id, if any."""
        return _stored(self._store.recall(transaction_id))

    def with_factors(self, recorded: Recorded) -> tuple[Decision, bool]:
        """The decision with its ML factors, computed now from the recorded features by the
        version that decided when it has none; the flag says whether they were computed now."""
        decision = recorded.decision
        reference = self._references.current
        if (recorded.features is None or decision.model_version is None or reference is None
                or any(r.source == "model" and r.code not in _MODEL_CODES
                       for r in decision.reasons)):
            return decision, False  # it has its factors, or nothing to compute them from
        vector = np.asarray([recorded.features], dtype=np.float32)
        engine = self._policy()
        prediction = self._model.predict(self._model_name, reference.rows(vector),
                                         version=decision.model_version)
        top = engine.policy.combine.top_factors
        verdict = verdicts(vector, prediction.outputs["probabilities"][:, 1],
                           prediction.model_version, reference, top)[0]
        factors = factor_reasons(engine.policy, verdict)
        reasons = tuple(sorted((*decision.reasons, *factors), key=lambda r: -r.contribution))
        return replace(decision, reasons=reasons), True

    @contextmanager
    def _stage(self, stage: str, path: ScoringPath, before_s: float = 0.0) -> Iterator[None]:
        start = time.perf_counter() - before_s
        try:
            yield
        finally:
            self._metrics.stage.labels(stage, path).observe(time.perf_counter() - start)

    def _read(self, transactions: Sequence[ScoredTransaction]
              ) -> tuple[StateRead | None, str | None]:
        try:
            return self._store.record_and_read(transactions), None
        except FraudStoreUnavailable as exc:  # the store degrades the decision, never fails it
            logger.warning("feature store failed", extra={"error": str(exc)})
            return None, f"{FEATURES_MISSING}: {exc}"

    def _vectors(self, transactions: Sequence[ScoredTransaction], read: StateRead | None,
                 store_down: str | None, to_decide: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The feature rows (and velocity facts) of the transactions at positions `to_decide`."""
        state = (read.state if read is not None
                 else StateBatch.of([FraudState()] * len(transactions)))
        features = batch_features(transactions, state)
        vectors, velocity = features.matrix[to_decide], features.velocity[to_decide]
        reference = self._references.current
        if store_down is not None and reference is not None and len(vectors):
            # No history: assume a typical card rather than a brand-new one.
            vectors[:, HISTORY_COLUMNS] = reference.values[HISTORY_COLUMNS]
        return vectors, velocity

    def _predict(self, vectors: np.ndarray) -> tuple[list[ModelVerdict], str | None]:
        try:
            prediction = self._model.predict(self._model_name, vectors)
            version = prediction.model_version
            probabilities = prediction.outputs["probabilities"][:, 1]
            found = verdicts(vectors, probabilities, version, None, 0)
        except Exception as exc:  # ModelError or anything else: decide on the rules alone
            if not isinstance(exc, ModelError):
                logger.exception("model call failed unexpectedly")
            return [], f"{MODEL_MISSING}: {type(exc).__name__}: {exc}"
        self._references.observe(version)
        return found, None

    def _factors(self, vectors: np.ndarray, models: Sequence[ModelVerdict], rows: list[int],
                 engine: RuleEngine) -> list[ModelVerdict]:
        """The verdicts of these rows again, with their top factors: one call of n x 33 rows.
        Without a reference, or if the call fails, the verdicts stay as they were."""
        reference = self._references.current
        if not rows or reference is None:
            return [models[k] for k in rows]
        try:
            prediction = self._model.predict(self._model_name, reference.rows(vectors),
                                             version=models[rows[0]].version)
            return verdicts(vectors, prediction.outputs["probabilities"][:, 1],
                            prediction.model_version, reference,
                            engine.policy.combine.top_factors)
        except Exception as exc:  # the decision stands; only its explanation is missing
            logger.warning("ML factors not computed", extra={"error": repr(exc)})
            return [models[k] for k in rows]

    def _remember(self, transactions: Sequence[ScoredTransaction], decisions: list[Decision],
                  vectors: np.ndarray, store_down: str | None) -> list[Decision]:
        """Record each new decision for the idempotency window; where another request for the
        same id recorded one first, that one is the answer (the first decision wins)."""
        if store_down is not None or not decisions:
            return decisions
        pairs = [(txn.transaction_id,
                  RECORDED_JSON.dump_json(Recorded(d, tuple(vectors[row].tolist()))))
                 for row, (txn, d) in enumerate(zip(transactions, decisions, strict=True))]
        try:
            recorded_first = self._store.remember(pairs, self.idempotency_window_s)
        except FraudStoreUnavailable as exc:  # a retry in the window is scored anew
            logger.warning("decision not recorded for idempotency",
                           extra={"error": f"{type(exc).__name__}: {exc}"})
            return decisions
        return [mine if theirs is None else RECORDED_JSON.validate_json(theirs).decision
                for mine, theirs in zip(decisions, recorded_first, strict=True)]

    def _count(self, scored: Sequence[Scored], path: ScoringPath, store_down: str | None,
               model_down: str | None) -> None:
        metrics = self._metrics
        # counted per batch, one labels() lookup per distinct value: per transaction it was a
        # few microseconds of the stream scorer's
        actions = Counter(item.decision.action for item in scored if not item.replayed)
        rules = Counter(rule for item in scored if not item.replayed
                        for rule in item.decision.rule_hits)
        for action, count in actions.items():
            metrics.decisions.labels(action, path).inc(count)
        for rule, count in rules.items():
            metrics.rule_hits.labels(rule).inc(count)
        for item in scored:
            if not item.replayed:
                metrics.risk.observe(item.decision.risk_score)
        decided_now = sum(actions.values())
        if decided_now < len(scored):
            metrics.replays.inc(len(scored) - decided_now)
        if store_down is not None:
            metrics.degraded.labels("features").inc(decided_now)
        if model_down is not None:
            metrics.degraded.labels("model").inc(decided_now)


_MODEL_CODES = frozenset({"ML_SCORE", "ML_HIGH_RISK"})


def _stored(stored: bytes | None) -> Recorded | None:
    return None if stored is None else RECORDED_JSON.validate_json(stored)
