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

from services.fraud.facts import FACTS, Fact, Facts, FactTable
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


_UFUNC: dict[str, np.ufunc] = {
    ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
    "==": np.equal, "!=": np.not_equal,
}


def _on_numbers(condition: Condition) -> bool:
    """A number fact compared with one number: evaluated in the grid, with every such one."""
    spec = FACTS.get(condition.fact)
    return (spec is not None and not spec.text and condition.op in _UFUNC
            and isinstance(condition.value, int | float))


class _Grid:
    """Every comparison of a number fact with a number, for all rules and a whole batch, in a
    handful of array operations: one per operator, and one product that ANDs each rule's."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.facts: list[str] = []
        at: dict[str, int] = {}
        columns: list[int] = []
        ops: list[str] = []
        values: list[float] = []
        owners: list[int] = []
        for r, rule in enumerate(rules):
            for condition in rule.when:
                if _on_numbers(condition):
                    columns.append(at.setdefault(condition.fact, len(at)))
                    ops.append(condition.op)
                    values.append(float(condition.value))  # type: ignore[arg-type]
                    owners.append(r)
        self.facts = list(at)
        self._columns = np.array(columns, dtype=np.intp)
        self._values = np.array(values, dtype=np.float64)
        self._by_op = {op: np.flatnonzero(np.array(ops) == op) for op in set(ops)}
        self._owner = np.zeros((len(owners), len(rules)))
        self._owner[np.arange(len(owners)), owners] = 1.0

    def fires(self, facts: FactTable) -> Mask:
        """[n, rules]: every number condition of the rule holds (a missing fact holds none)."""
        n = facts.size
        zeros = np.zeros(n)
        present = np.array([f in facts.numbers for f in self.facts], dtype=bool)
        table = (np.column_stack([facts.numbers.get(f, zeros) for f in self.facts])
                 if self.facts else np.zeros((n, 0)))
        values = table[:, self._columns]
        held = np.empty(values.shape, dtype=bool)
        for op, where in self._by_op.items():
            held[:, where] = _UFUNC[op](values[:, where], self._values[where])
        held &= present[self._columns]
        return np.asarray((~held).astype(np.float64) @ self._owner == 0, dtype=bool)


class _Compiled:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        # what the grid does not evaluate: text facts and lists, value by value
        self._tests = tuple(_condition(c) for c in rule.when if not _on_numbers(c))
        # the facts its reason text names: only these are formatted when it fires
        self._shown = tuple(field for _, field, _, _ in Formatter().parse(rule.description)
                            if field)

    def refine(self, facts: FactTable, mask: Mask) -> None:
        """AND in the conditions the grid left out."""
        for test in self._tests:
            mask &= test(facts)

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
        enabled = [rule for rule in policy.rules if rule.enabled]
        self._rules = tuple(_Compiled(rule) for rule in enabled)
        self._grid = _Grid(enabled)

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
        fired = self._grid.fires(facts)
        for r, rule in enumerate(self._rules):
            rule.refine(facts, fired[:, r])
        hits: list[list[RuleHit]] = [[] for _ in range(facts.size)]
        for row, r in zip(*np.nonzero(fired), strict=True):  # by row, then in policy order
            hits[row].append(self._rules[r].hit(facts, row))
        return hits

    def listed(self, facts: Facts) -> ListHit | None:
        return self.listed_table(FactTable.of_rows([facts]))[0]

    def hits(self, facts: Facts) -> list[RuleHit]:
        return self.hits_table(FactTable.of_rows([facts]))[0]
