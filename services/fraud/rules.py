"""The rules engine: allow and block lists first (as in Stripe Radar), then every rule (pure).

    engine = RuleEngine(policy)
    listed = engine.listed(facts)      # ListHit | None: allow wins over block, both over rules
    hits = engine.hits(facts)          # the rules that fired, with their reason text

A rule fires when all its conditions hold. A condition on a fact that is missing (the card's
history when the feature store was unreachable) does not hold, so such rules stay silent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.fraud.facts import Fact, Facts
from services.fraud.policy import LISTED_FIELDS, Action, Condition, Lists, Policy, Rule

Test = Callable[[Facts], bool]

_COMPARE: dict[str, Callable[[Fact, Fact], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    text: str
    score: float
    action: Action | None


@dataclass(frozen=True)
class ListHit:
    kind: Literal["allow", "block"]
    field: str
    value: str

    @property
    def code(self) -> str:
        return f"{self.kind.upper()}_LIST_{self.field.upper()}"

    @property
    def text(self) -> str:
        return f"{self.field.replace('_', ' ')} {self.value} is on the {self.kind} list"


def _number(value: Fact) -> Fact:
    return float(value) if isinstance(value, int) else value


def _condition(condition: Condition) -> Test:
    fact, op = condition.fact, condition.op
    if isinstance(condition.value, list):
        members = frozenset(_number(v) for v in condition.value)
        inside = op == "in"
        return lambda facts: fact in facts and (facts[fact] in members) == inside
    # Ordering a text fact is refused at load, so an ordered comparison always meets a number.
    compare, value = _COMPARE[op], _number(condition.value)
    return lambda facts: fact in facts and compare(facts[fact], value)


class _Compiled:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._tests = tuple(_condition(c) for c in rule.when)

    def check(self, facts: Facts) -> RuleHit | None:
        if not all(test(facts) for test in self._tests):
            return None
        return RuleHit(self.rule.id, _text(self.rule.description, facts), self.rule.score,
                       self.rule.action)


class _Formatted(dict[str, object]):
    """Numbers in reason texts as people write them: 3 not 3.0, 1,250.50 not 1250.5."""

    def __missing__(self, key: str) -> str:
        return "?"


def _shown(value: Fact) -> object:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return value


def _text(template: str, facts: Facts) -> str:
    return template.format_map(_Formatted({k: _shown(v) for k, v in facts.items()}))


class RuleEngine:
    """One policy's rules, compiled once (a reload builds a new engine)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = tuple(_Compiled(rule) for rule in policy.rules if rule.enabled)

    def listed(self, facts: Facts) -> ListHit | None:
        return (_on_list("allow", self.policy.allow, facts)
                or _on_list("block", self.policy.block, facts))

    def hits(self, facts: Facts) -> list[RuleHit]:
        return [hit for rule in self._rules if (hit := rule.check(facts)) is not None]


def _on_list(kind: Literal["allow", "block"], lists: Lists, facts: Facts) -> ListHit | None:
    for field in LISTED_FIELDS:
        value = facts.get(field)
        if isinstance(value, str) and value in getattr(lists, field):
            return ListHit(kind, field, value)
    return None
