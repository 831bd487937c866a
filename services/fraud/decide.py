"""The combination: lists, rule scores and the model's score into one decision with reasons (pure).

    risk = min(1, sum of fired rule scores + ml_weight x ML score)      (the design brief's form)
    level = critical >= 0.8 > high >= 0.6 > medium >= 0.3 > low; action by level (policy file)

then, in this order of precedence: an allow or block list hit decides alone; a rule's forced
action raises the level's action (never lowers it); the model alone declines at
`ml_decline_at` (with the brief's 0.7 weight it otherwise never could: 0.7 x 1 < 0.8); and a
decision made degraded may approve only as the stand-in policy allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.fraud.explain import ModelVerdict
from services.fraud.policy import Action, Level, Policy
from services.fraud.rules import ListHit, RuleHit

SEVERITY: dict[Action, int] = {"approve": 0, "review": 1, "decline": 2}
# Every `degraded` entry names what was missing first: "features: ...", "model: ...".
FEATURES_MISSING = "features"
MODEL_MISSING = "model"
CONFIDENT_MARGIN = 0.15  # a score this far from every threshold is a confident call


@dataclass(frozen=True)
class Reason:
    code: str
    text: str
    contribution: float  # what it added to the risk score
    source: Literal["list", "rule", "model", "policy"]


@dataclass(frozen=True)
class Decision:
    risk_score: float
    risk_level: Level
    action: Action
    reasons: tuple[Reason, ...]    # strongest first
    rule_hits: tuple[str, ...]
    ml_score: float | None
    model_version: int | None
    confidence: float
    degraded: tuple[str, ...]      # why, one entry per missing dependency; empty when whole
    policy_version: str


def decide(policy: Policy, *, listed: ListHit | None, hits: Sequence[RuleHit],
           model: ModelVerdict | None, degraded: Sequence[str], amount: float) -> Decision:
    if listed is not None:
        return _listed(policy, listed, model, degraded)
    ml_part = policy.combine.ml_weight * model.score if model is not None else 0.0
    risk = min(1.0, sum(hit.score for hit in hits) + ml_part)
    level = policy.level_of(risk)
    reasons = [Reason(hit.rule_id, hit.text, hit.score, "rule") for hit in hits]
    forced: list[Action] = [hit.action for hit in hits if hit.action is not None]
    if model is not None:
        reasons += _model_reasons(policy, model, ml_part)
        decline_at = policy.combine.ml_decline_at
        if decline_at is not None and model.score >= decline_at:
            forced.append("decline")
            reasons.append(Reason("ML_HIGH_RISK", f"the model alone declines at a fraud "
                                  f"probability of {decline_at:.2f} or more", 0.0, "model"))
    action: Action = max([getattr(policy.actions, level), *forced], key=SEVERITY.__getitem__)
    if degraded and action == "approve" and not _stand_in_approves(policy, amount):
        action = "review"
        reasons.append(Reason("DEGRADED_REVIEW", "decided without all its inputs; the stand-in "
                              "policy does not approve this", 0.0, "policy"))
    confidence = 1.0 if forced else _margin_confidence(policy, risk)
    return Decision(
        risk_score=risk, risk_level=level, action=action,
        reasons=tuple(sorted(reasons, key=lambda r: -r.contribution)),
        rule_hits=tuple(hit.rule_id for hit in hits),
        ml_score=model.score if model is not None else None,
        model_version=model.version if model is not None else None,
        confidence=round(confidence * _completeness(model, degraded), 4),
        degraded=tuple(degraded), policy_version=policy.version,
    )


def _listed(policy: Policy, listed: ListHit, model: ModelVerdict | None,
            degraded: Sequence[str]) -> Decision:
    block = listed.kind == "block"
    risk = 1.0 if block else 0.0
    return Decision(
        risk_score=risk, risk_level=policy.level_of(risk),
        action="decline" if block else "approve",
        reasons=(Reason(listed.code, listed.text, risk, "list"),), rule_hits=(),
        ml_score=model.score if model is not None else None,
        model_version=model.version if model is not None else None,
        confidence=1.0, degraded=tuple(degraded), policy_version=policy.version,
    )


def _model_reasons(policy: Policy, model: ModelVerdict, ml_part: float) -> list[Reason]:
    weight = policy.combine.ml_weight
    return [Reason("ML_SCORE", f"fraud model v{model.version}: probability "
                   f"{model.score:.2f}, weighted x{weight:g}", ml_part, "model"),
            *factor_reasons(policy, model)]


def factor_reasons(policy: Policy, model: ModelVerdict) -> list[Reason]:
    """ML_<FEATURE> reasons: the verdict's top factors, each weighted as the score is."""
    weight = policy.combine.ml_weight
    return [Reason(f"ML_{factor.feature.upper()}",
                   f"{factor.feature} = {factor.value:.4g} (typical {factor.typical:.4g}) raised "
                   f"the fraud probability by {factor.effect:.2f}", weight * factor.effect, "model")
            for factor in model.factors[:policy.combine.top_factors]]


def _stand_in_approves(policy: Policy, amount: float) -> bool:
    stand_in = policy.degraded
    return stand_in.policy == "open" and amount <= stand_in.open_max_amount


def _margin_confidence(policy: Policy, risk: float) -> float:
    """0.5 on a threshold, rising to 1 at CONFIDENT_MARGIN or more from every threshold."""
    levels = policy.levels
    margin = min(abs(risk - t) for t in (levels.medium, levels.high, levels.critical))
    return 0.5 + 0.5 * min(1.0, margin / CONFIDENT_MARGIN)


def _completeness(model: ModelVerdict | None, degraded: Sequence[str]) -> float:
    """Halved without the model; three quarters of that without the card's history."""
    factor = 1.0 if model is not None else 0.5
    if any(why.startswith(FEATURES_MISSING) for why in degraded):
        factor *= 0.75
    return factor
