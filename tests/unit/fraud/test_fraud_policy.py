"""The policy file: parse errors that name the rule and the problem; hot reload that keeps the last
good policy when an edit is refused."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from services.fraud.policy import PolicyError, parse_policy
from services.fraud.policy_file import PolicyFile, load_engine
from tests.support.fraud import POLICY_PATH


def rule(rule_id: str = "BIG_AMOUNT", **changes: Any) -> dict[str, Any]:
    return {"id": rule_id, "description": "amount {amount}", "score": 0.2,
            "when": [{"fact": "amount", "op": ">=", "value": 1000}], **changes}


def policy(*rules: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"version": "v1", "rules": list(rules), **sections}


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as raised:
        parse_policy(data)
    return str(raised.value)


def test_the_repositorys_policy_file_parses_with_its_version_and_rules() -> None:
    engine = load_engine(POLICY_PATH)
    assert engine.policy.version == "2026-11-21.1"
    assert engine.policy.combine.ml_weight == 0.7
    assert engine.policy.combine.ml_decline_at == 0.8
    assert len(engine.policy.rules) == 17


def test_a_valid_rule_parses_with_its_numbers_as_floats() -> None:
    parsed = parse_policy(policy(rule()))
    assert parsed.rules[0].id == "BIG_AMOUNT"
    assert parsed.rules[0].when[0].value == 1000.0


@pytest.mark.parametrize(("bad_rule", "expected"), [
    (rule(when=[{"fact": "amout", "op": ">=", "value": 1000}]),
     "rules[1] (BAD_ONE).when[0]: unknown fact 'amout'"),
    (rule(when=[{"fact": "merchant_category", "op": ">", "value": 5}]),
     "rules[1] (BAD_ONE).when[0]: merchant_category > 5.0: ordering compares numbers"),
    (rule(when=[{"fact": "amount", "op": ">=", "value": "big"}]),
     "rules[1] (BAD_ONE).when[0]: amount >= 'big': ordering compares numbers"),
    (rule(when=[{"fact": "merchant_category", "op": "in", "value": "online_gaming"}]),
     "rules[1] (BAD_ONE).when[0]: merchant_category in: 'in' and 'not_in' take a list"),
    (rule(when=[{"fact": "amount", "op": "==", "value": [1, 2]}]),
     "rules[1] (BAD_ONE).when[0]: amount ==: 'in' and 'not_in' take a list"),
    (rule(description="amount {amout}"),
     "rules[1] (BAD_ONE): description placeholder {amout} must be a bare fact name"),
    (rule(description="amount {}"),
     "rules[1] (BAD_ONE): description placeholder {} must be a bare fact name"),
    (rule(score=1.5), "rules[1] (BAD_ONE).score: Input should be less than or equal to 1"),
    (rule(when=[]), "rules[1] (BAD_ONE).when: List should have at least 1 item"),
    (rule(action="block"), "rules[1] (BAD_ONE).action: Input should be 'review' or 'decline'"),
    # Forced actions only escalate; approving against the score is the allow list's job.
    (rule(action="approve"), "rules[1] (BAD_ONE).action: Input should be 'review' or 'decline'"),
    # A format spec would be applied to an already formatted text and fail at decision time.
    (rule(description="amount {amount:.2f}"),
     "rules[1] (BAD_ONE): description placeholder {amount} must be a bare fact name"),
    (rule(when=[{"fact": "amount", "op": "==", "value": "5"}]),
     "rules[1] (BAD_ONE).when[0]: amount is a number: '5' could never match"),
    (rule(when=[{"fact": "merchant_category", "op": "in", "value": ["atm", 5]}]),
     "rules[1] (BAD_ONE).when[0]: merchant_category is text"),
    (rule(scroe=0.3), "rules[1] (BAD_ONE).scroe: Extra inputs are not permitted"),
    (rule(when=[{"fact": "amount", "op": "~", "value": 1}]),
     "rules[1] (BAD_ONE).when[0].op: Input should be"),
])
def test_a_bad_rule_is_refused_naming_the_rule_and_the_problem(
        bad_rule: dict[str, Any], expected: str) -> None:
    bad_rule["id"] = "BAD_ONE"
    assert expected in problem(policy(rule("GOOD_ONE"), bad_rule))


def test_a_rule_id_that_is_not_a_reason_code_is_refused() -> None:
    assert "rules[0] (big amount).id: String should match pattern" in problem(
        policy(rule("big amount")))


def test_duplicate_rule_ids_are_refused_naming_the_id() -> None:
    assert problem(policy(rule("TWICE"), rule("OTHER"), rule("TWICE"))) == (
        "policy: rule id TWICE appears twice")


def test_thresholds_that_do_not_increase_are_refused() -> None:
    message = problem(policy(levels={"medium": 0.5, "high": 0.4, "critical": 0.8}))
    assert message == "levels: thresholds must be medium <= high <= critical"


@pytest.mark.parametrize(("sections", "expected"), [
    ({"combine": {"ml_weight": 1.5}}, "combine.ml_weight: Input should be less than or equal"),
    ({"degraded": {"policy": "ajar"}}, "degraded.policy: Input should be 'open' or 'closed'"),
    ({"block": {"email": ["x@example.com"]}}, "block.email: Extra inputs are not permitted"),
    ({"version": ""}, "version: String should have at least 1 character"),
])
def test_a_bad_section_is_refused_naming_the_entry(sections: dict[str, Any],
                                                   expected: str) -> None:
    assert expected in problem(policy(**sections))


def test_every_problem_is_named_at_once() -> None:
    message = problem(policy(
        rule("FIRST", when=[{"fact": "nope", "op": "==", "value": 1}]),
        rule("SECOND", description="{missing}")))
    assert "rules[0] (FIRST).when[0]: unknown fact 'nope'" in message
    assert ("rules[1] (SECOND): description placeholder {missing} must be a bare fact name"
            in message)


def test_a_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("version = \n")
    with pytest.raises(PolicyError, match=f"^{re.escape(str(path))}: "):
        load_engine(path)


# --- Hot reload --------------------------------------------------------------------------------

GOOD = """
version = "{version}"
[[rules]]
id = "BIG_AMOUNT"
description = "amount {{amount}}"
when = [{{ fact = "amount", op = ">=", value = {threshold} }}]
score = 0.2
"""
BROKEN = GOOD.replace('fact = "amount"', 'fact = "amout"')


def write(path: Path, text: str, *, mtime_ns: int) -> None:
    """Write and set the modification time: a stat must see the change whatever the clock."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def outcomes() -> list[str]:
    return []


def watched(path: Path, outcomes: list[str], interval_s: float = 0.0) -> PolicyFile:
    return PolicyFile(path, check_interval_s=interval_s, on_reload=outcomes.append)


def test_an_edited_file_is_used_by_the_next_call(tmp_path: Path, outcomes: list[str]) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    policy_file = watched(path, outcomes)
    assert policy_file.engine().policy.version == "v1"

    write(path, GOOD.format(version="v2", threshold=500), mtime_ns=2_000_000_000)
    engine = policy_file.engine()
    assert engine.policy.version == "v2"
    assert [hit.rule_id for hit in engine.hits({"amount": 600.0})] == ["BIG_AMOUNT"]
    assert outcomes == ["loaded"]


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, outcomes: list[str]) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    policy_file = watched(path, outcomes)
    first = policy_file.engine()
    assert policy_file.engine() is first
    assert outcomes == []


def test_a_change_waits_for_the_check_interval(tmp_path: Path, outcomes: list[str]) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    policy_file = watched(path, outcomes, interval_s=3600.0)
    write(path, GOOD.format(version="v2", threshold=500), mtime_ns=2_000_000_000)
    assert policy_file.engine().policy.version == "v1"
    assert outcomes == []


def test_a_broken_edit_is_refused_and_the_last_good_policy_stays(
        tmp_path: Path, outcomes: list[str]) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    policy_file = watched(path, outcomes)
    good = policy_file.engine()

    write(path, BROKEN.format(version="v2", threshold=500), mtime_ns=2_000_000_000)
    assert policy_file.engine() is good
    assert policy_file.engine() is good  # refused once, not on every call
    assert outcomes == ["refused"]

    write(path, GOOD.format(version="v3", threshold=500), mtime_ns=3_000_000_000)
    assert policy_file.engine().policy.version == "v3"
    assert outcomes == ["refused", "loaded"]


def test_a_removed_file_keeps_the_policy_in_hand(tmp_path: Path, outcomes: list[str]) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    policy_file = watched(path, outcomes)
    path.unlink()
    assert policy_file.engine().policy.version == "v1"
    assert outcomes == []


def test_a_broken_file_at_start_raises_policy_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, BROKEN.format(version="v1", threshold=1000), mtime_ns=1_000_000_000)
    with pytest.raises(PolicyError, match="unknown fact 'amout'") as raised:
        PolicyFile(path)
    assert str(raised.value).startswith(f"{path}: rules[0] (BIG_AMOUNT).when[0]")
