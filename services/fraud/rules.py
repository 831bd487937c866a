"""The rules engine: allow and block lists first (as in Stripe Radar), then every rule (pure).

    engine = RuleEngine(policy)
    listed = engine.listed_table(facts)  # per transaction, ListHit | None: allow, then block
    hits = engine.hits_table(facts)      # per transaction, the rules that fired, with reasons
    engine.hits(one_row_of_facts)        # the same for one transaction's facts as a mapping

A rule fires when all its conditions hold. A condition on a fact that is missing (the card's
history when the feature store was unreachable) does not hold, so such rules stay silent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from services.fraud.facts import Fact, Facts, FactTable
from services.fraud.policy import LISTED_FIELDS, Action, Condition, Policy, Rule

Mask = npt.NDArray[np.bool_]
Test = Callable[[FactTable], Mask]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
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


def _column(facts: FactTable, fact: str) -> Sequence[Fact] | npt.NDArray[np.float64] | None:
    if fact in facts.numbers:
        return facts.numbers[fact]
    return facts.texts.get(fact)


def _condition(condition: Condition) -> Test:
    """The condition over a whole batch: numbers compared as arrays, text value by value."""
    fact, op = condition.fact, condition.op
    if isinstance(condition.value, list):
        members = frozenset(_number(v) for v in condition.value)
        inside = op == "in"

        def member(facts: FactTable) -> Mask:
            column = _column(facts, fact)
            if column is None:
                return np.zeros(facts.size, dtype=bool)
            values = column.tolist() if isinstance(column, np.ndarray) else column
            return np.fromiter(((v in members) == inside for v in values), bool, facts.size)
        return member
    # Ordering a text fact is refused at load, so an ordered comparison always meets a number.
    compare, value = _COMPARE[op], _number(condition.value)

    def compared(facts: FactTable) -> Mask:
        column = _column(facts, fact)
        if column is None:
            return np.zeros(facts.size, dtype=bool)
        if isinstance(column, np.ndarray) and isinstance(value, float):
            return np.asarray(compare(column, value), dtype=bool)
        values = column.tolist() if isinstance(column, np.ndarray) else column
        return np.fromiter((bool(compare(v, value)) for v in values), bool, facts.size)
    return compared


class _Compiled:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._tests = tuple(_condition(c) for c in rule.when)
        # the facts its reason text names: only these are formatted when it fires
        self._shown = tuple(field for _, field, _, _ in Formatter().parse(rule.description)
                            if field)

    def fires(self, facts: FactTable) -> Mask:
        mask = np.ones(facts.size, dtype=bool)
        for test in self._tests:
            mask &= test(facts)
        return mask

    def hit(self, facts: FactTable, row: int) -> RuleHit:
        shown = _Formatted({name: _shown(value) for name in self._shown
                            if (value := facts.value(name, row)) is not None})
        return RuleHit(self.rule.id, self.rule.description.format_map(shown), self.rule.score,
                       self.rule.action)


class _Formatted(dict[str, object]):
    """Numbers in reason texts as people write them: 3 not 3.0, 1,250.50 not 1250.5."""

    def __missing__(self, key: str) -> str:
        return "?"


def _shown(value: Fact) -> object:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return value


class RuleEngine:
    """One policy's rules, compiled once (a reload builds a new engine)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = tuple(_Compiled(rule) for rule in policy.rules if rule.enabled)

    def listed_table(self, facts: FactTable) -> list[ListHit | None]:
        """Per transaction, its list hit: allow before block, fields in LISTED_FIELDS order."""
        found: list[ListHit | None] = [None] * facts.size
        for kind, lists in (("allow", self.policy.allow), ("block", self.policy.block)):
            for field in LISTED_FIELDS:
                listed = getattr(lists, field)
                values = facts.texts.get(field)
                if not listed or values is None:
                    continue
                for row, value in enumerate(values):
                    if found[row] is None and value in listed:
                        found[row] = ListHit(kind, field, value)  # type: ignore[arg-type]
        return found

    def hits_table(self, facts: FactTable) -> list[list[RuleHit]]:
        """Per transaction, the rules that fired, in the policy's order. Each rule is one array
        test over the batch; reason texts are written only for the rows it fired on."""
        hits: list[list[RuleHit]] = [[] for _ in range(facts.size)]
        for rule in self._rules:
            for row in np.flatnonzero(rule.fires(facts)).tolist():
                hits[row].append(rule.hit(facts, row))
        return hits

    def listed(self, facts: Facts) -> ListHit | None:
        return self.listed_table(FactTable.of_rows([facts]))[0]

    def hits(self, facts: Facts) -> list[RuleHit]:
        return self.hits_table(FactTable.of_rows([facts]))[0]
