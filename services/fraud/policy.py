"""The decision policy as written in its file: rules, lists, weights, thresholds (validated, pure).

    policy = parse_policy(tomllib.loads(text))   # PolicyError says what is wrong, and where

Every number that shapes a decision lives in the file (config/fraud/policy.toml), so changing a
threshold is a reviewed one-line change that the service picks up without a restart.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.fraud.facts import FACTS

Action = Literal["approve", "review", "decline"]
Level = Literal["low", "medium", "high", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in"]
Scalar = float | str
Probability = Annotated[float, Field(ge=0, le=1)]

NUMERIC_OPS = frozenset({">", ">=", "<", "<="})
MEMBERSHIP_OPS = frozenset({"in", "not_in"})
LISTED_FIELDS = ("card_id", "user_id", "device_id", "ip_address", "merchant_id")
RULE_ID = r"^[A-Z][A-Z0-9_]{2,47}$"


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the entry and the problem."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Spec):
    fact: str
    op: Op
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _fits_the_fact(self) -> Self:
        spec = FACTS.get(self.fact)
        if spec is None:
            raise ValueError(f"unknown fact {self.fact!r} (known: docs/fraud.md, facts table)")
        if (self.op in MEMBERSHIP_OPS) != isinstance(self.value, list):
            raise ValueError(f"{self.fact} {self.op}: 'in' and 'not_in' take a list, "
                             "the other operators one value")
        if self.op in NUMERIC_OPS and (spec.text or not isinstance(self.value, int | float)):
            raise ValueError(f"{self.fact} {self.op} {self.value!r}: ordering compares numbers")
        values = self.value if isinstance(self.value, list) else [self.value]
        if any(isinstance(v, str) != spec.text for v in values):
            kind = "text" if spec.text else "a number"
            raise ValueError(f"{self.fact} is {kind}: {self.value!r} could never match")
        return self


class Rule(_Spec):
    id: str = Field(pattern=RULE_ID, description="stable: the reason code clients key on")
    description: str = Field(min_length=1, description="reason text; {fact} placeholders")
    when: list[Condition] = Field(min_length=1, description="all must hold")
    score: Probability = Field(description="added to the risk score when the rule fires")
    # Forced actions only escalate: the decision is the most severe of the level's action and
    # every fired rule's. Approving against the score is what the allow list is for.
    action: Literal["review", "decline"] | None = Field(
        None, description="at least this action, whatever the score")
    enabled: bool = True

    @model_validator(mode="after")
    def _placeholders_are_facts(self) -> Self:
        for _, field, spec, conversion in string.Formatter().parse(self.description):
            if field is not None and (field not in FACTS or spec or conversion):
                raise ValueError(f"description placeholder {{{field}}} must be a bare fact "
                                 "name (numbers are formatted for people already)")
        return self

    @property
    def needs_history(self) -> bool:
        return any(FACTS[c.fact].needs_history for c in self.when)


class Combination(_Spec):
    ml_weight: float = Field(0.7, ge=0, le=1, description="risk = rules + ml_weight x ML")
    ml_decline_at: Probability | None = Field(
        0.9, description="the model alone declines at or above this score (none: never)")
    top_factors: int = Field(3, ge=0, le=10, description="ML factors listed per decision")


class Levels(_Spec):
    """risk_level by risk score: at or above `critical` is critical, and so on down."""

    medium: Probability = 0.3
    high: Probability = 0.6
    critical: Probability = 0.8

    @model_validator(mode="after")
    def _increasing(self) -> Self:
        if not self.medium <= self.high <= self.critical:
            raise ValueError("thresholds must be medium <= high <= critical")
        return self


class Actions(_Spec):
    low: Action = "approve"
    medium: Action = "review"
    high: Action = "review"
    critical: Action = "decline"


class Degraded(_Spec):
    """What a decision made without features or model may do (the stand-in policy)."""

    policy: Literal["open", "closed"] = Field(
        "open", description="open: it may approve; closed: an approval becomes a review")
    open_max_amount: float = Field(
        500.0, ge=0, description="open approves only up to this amount; above it, closed")


class Lists(_Spec):
    card_id: frozenset[str] = frozenset()
    user_id: frozenset[str] = frozenset()
    device_id: frozenset[str] = frozenset()
    ip_address: frozenset[str] = frozenset()
    merchant_id: frozenset[str] = frozenset()


class Policy(_Spec):
    version: str = Field(min_length=1, description="recorded with every decision")
    combine: Combination = Combination()
    levels: Levels = Levels()
    actions: Actions = Actions()
    degraded: Degraded = Degraded()
    allow: Lists = Lists()
    block: Lists = Lists()
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id} appears twice")
            seen.add(rule.id)
        return self

    def level_of(self, risk: float) -> Level:
        levels = self.levels
        if risk >= levels.critical:
            return "critical"
        if risk >= levels.high:
            return "high"
        if risk >= levels.medium:
            return "medium"
        return "low"


def parse_policy(data: dict[str, object]) -> Policy:
    """The policy in `data` (a parsed TOML document), or PolicyError naming every problem."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = _where(data, error["loc"])
            problems.append(f"{where}: {re.sub(r'^Value error, ', '', error['msg'])}")
        raise PolicyError("; ".join(problems)) from exc


def _where(data: dict[str, object], loc: tuple[int | str, ...]) -> str:
    """`rules[3] (VELOCITY_1M).when[0].fact` rather than a bare index path."""
    parts: list[str] = []
    node: object = data
    for part in loc:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "id" in node and len(parts) == 1:
                parts[-1] += f" ({node['id']})"
        else:
            parts.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "policy"
