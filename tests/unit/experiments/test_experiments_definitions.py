"""Definitions: what validates, the messages that name the field, the version-controlled file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import (
    InvalidDefinition,
    load_definitions_file,
    parse_definition,
)
from tests.harness import REPO_ROOT


def valid(**changes: Any) -> dict[str, Any]:
    return {"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
        {"name": "treatment", "weight": 0.5, "payload": {"algorithm": "ranker"}}], **changes}


def test_the_seed_defaults_to_the_key_and_the_hash_to_version_2() -> None:
    definition = parse_definition(valid())

    assert (definition.seed, definition.hash_version, definition.coverage) == (
        "rec-algorithm", 2, 1.0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"variations": [{"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.4}]},
     "variations: variation weights must sum to 1; they sum to 0.9"),
    ({"variations": [{"name": "a", "weight": 0.5}, {"name": "a", "weight": 0.5}]},
     "variations: variation names must be unique; repeated: ['a']"),
    ({"variations": [{"name": "only", "weight": 1.0}]}, "variations: List should have at least 2"),
    ({"coverage": 1.5}, "coverage: Input should be less than or equal to 1"),
    ({"status": "paused"}, "status: Input should be 'draft', 'running' or 'stopped'"),
    ({"hash_version": 3}, "hash_version: Input should be 1 or 2"),
    ({"key": "Rec Algorithm"}, "key: String should match pattern"),
    ({"key": "a{b}"}, "key: String should match pattern"),
    ({"forced_variations": {"u1": "nope"}},
     "forced_variations: unknown variation(s) ['nope']; known: ['control', 'treatment']"),
    ({"forced_variations": {"u\x001": "control"}},
     "forced_variations.u\x001.[key]: Value error, an id may not hold a control"),
    ({"namespace": {"id": "homepage", "start": 0.6, "end": 0.4}},
     "namespace: namespace start (0.6) must be below its end (0.4)"),
    ({"weights": [0.5, 0.5]}, "weights: Extra inputs are not permitted"),
])
def test_an_invalid_definition_is_refused_naming_the_field(changes: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(valid(**changes))
    assert message in str(refused.value)


def test_weights_that_sum_to_one_in_decimal_but_not_in_binary_are_accepted() -> None:
    thirds = parse_definition(valid(variations=[
        {"name": n, "weight": w} for n, w in (("a", 0.3334), ("b", 0.3333), ("c", 0.3333))]))
    assert thirds.ranges[-1][1] == pytest.approx(1.0)


def test_a_copy_with_changes_is_validated_and_buckets_with_its_own_ranges() -> None:
    definition = parse_definition(valid())
    assert definition.ranges == ((0.0, 0.5), (0.5, 1.0))  # cached on first use

    narrower = definition.model_copy(update={"coverage": 0.5})

    assert narrower.ranges == ((0.0, 0.25), (0.5, 0.75))
    with pytest.raises(ValueError, match="coverage"):
        definition.model_copy(update={"coverage": 2})


def test_the_repository_file_defines_the_recommender_experiment() -> None:
    definitions = {d.key: d for d in load_definitions_file(
        REPO_ROOT / "config" / "experiments" / "experiments.toml")}

    rec = definitions["rec-algorithm"]
    assert (rec.status, rec.coverage, rec.hash_attribute, rec.hash_version) == (
        "running", 1.0, "user_id", 2)
    assert [(v.name, v.weight, v.payload) for v in rec.variations] == [
        ("control", 0.5, {"algorithm": "blend"}), ("treatment", 0.5, {"algorithm": "ranker"})]
    draft = next(d for d in definitions.values() if d.status == "draft")
    assert draft.namespace is not None
    assert assign(draft, next(iter(draft.forced_variations))).forced


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text, encoding="utf-8")
    return path


VARIATIONS = """
[[experiments.variations]]
name = "a"
weight = 0.5
[[experiments.variations]]
name = "b"
weight = 0.5
"""


def test_a_file_error_names_the_file_the_experiment_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[[experiments]]\nkey = "x"\ncoverage = 7\n' + VARIATIONS)

    with pytest.raises(InvalidDefinition, match=r"experiments.toml: experiment x: coverage"):
        load_definitions_file(path)


def test_a_file_may_not_define_a_key_twice(tmp_path: Path) -> None:
    one = '[[experiments]]\nkey = "x"\n' + VARIATIONS
    with pytest.raises(InvalidDefinition, match=r"keys repeated: \['x'\]"):
        load_definitions_file(write(tmp_path, one + one))


def test_experiments_of_a_file_may_not_overlap_in_a_namespace(tmp_path: Path) -> None:
    text = "".join(f'[[experiments]]\nkey = "{key}"\n'
                   f'namespace = {{ id = "home", start = {start}, end = {end} }}\n' + VARIATIONS
                   for key, start, end in (("x", 0.0, 0.6), ("y", 0.5, 1.0)))
    with pytest.raises(InvalidDefinition, match="x and y overlap in namespace home"):
        load_definitions_file(write(tmp_path, text))


def test_a_file_that_is_not_toml_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match=r"experiments\.toml"):
        load_definitions_file(write(tmp_path, "[[experiments]\n"))
