"""docs/fraud.md shows the policy that runs: its rules and facts tables are the generated ones."""

from __future__ import annotations

from services.fraud.policy_file import load_engine
from services.fraud.policy_tables import facts_table, rules_table
from tests.harness import REPO_ROOT

DOC = REPO_ROOT / "docs" / "fraud.md"


def test_the_rules_table_in_the_docs_is_the_policy_files() -> None:
    policy = load_engine(REPO_ROOT / "config" / "fraud" / "policy.toml").policy
    assert rules_table(policy) in DOC.read_text()


def test_the_facts_table_in_the_docs_lists_every_fact() -> None:
    assert facts_table() in DOC.read_text()
