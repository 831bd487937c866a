"""The policy and the facts as markdown tables, for docs/fraud.md (a test keeps them in sync).

    python -m services.fraud.policy_tables [config/fraud/policy.toml]
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.fraud.facts import FACTS
from services.fraud.policy import Condition, Policy
from services.fraud.policy_file import load_engine

DEFAULT_POLICY = Path("config/fraud/policy.toml")


def _value(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _condition(c: Condition) -> str:
    return f"`{c.fact}` {c.op} {_value(c.value)}"


def rules_table(policy: Policy) -> str:
    lines = ["| code | fires when (all) | score | forced action | needs history |",
             "|---|---|---|---|---|"]
    for rule in policy.rules:
        when = " and ".join(_condition(c) for c in rule.when)
        lines.append(f"| `{rule.id}` | {when} | {rule.score:g} | {rule.action or '-'} | "
                     f"{'yes' if rule.needs_history else 'no'} |")
    return "\n".join(lines)


def facts_table() -> str:
    lines = ["| fact | meaning | needs history |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.description} | {'yes' if f.needs_history else 'no'} |"
              for f in FACTS.values()]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    policy = load_engine(Path(argv[0]) if argv else DEFAULT_POLICY).policy
    sys.stdout.write(f"{rules_table(policy)}\n\n{facts_table()}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
