"""GrowthBook compatibility beyond its published cases (non-ASCII ids, reported buckets), and the
properties bucketing promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import ExperimentDefinition, parse_definition
from services.designs.experiments.hashing import fnv1a32, gb_hash, in_namespace

# Ours, beside GrowthBook's published cases (test_growthbook_conformance.py runs those).
CASES = json.loads((Path(__file__).parent / "data" / "growthbook" / "derived_cases.json")
                   .read_text("utf-8"))


@pytest.mark.parametrize(("seed", "version", "unit", "weights", "coverage", "bucket", "index"),
                         CASES["experimentResult"]["cases"])
def test_assign_reports_the_bucket_growthbook_reports(
        seed: str, version: int, unit: str, weights: list[float], coverage: float,
        bucket: float, index: int) -> None:
    definition = parse_definition({
        "key": seed, "status": "running", "hash_version": version, "coverage": coverage,
        "variations": [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)]})

    assignment = assign(definition, unit)

    assert (assignment.bucket, assignment.variation) == (bucket, f"v{index}")


@pytest.mark.parametrize(("seed", "value", "version", "expected"),
                         CASES["nonAscii"]["cases"])
def test_non_ascii_ids_hash_as_javascript_strings(seed: str, value: str, version: int,
                                                  expected: float) -> None:
    assert gb_hash(seed, value, version) == expected


def test_a_character_beyond_the_bmp_hashes_as_its_two_utf16_code_units() -> None:
    # JavaScript's "😀".charCodeAt gives 0xD83D, 0xDE00 (GrowthBook's Python SDK 4.0.0 reads
    # the same); a code-point reading hashes 0x1F600 once and disagrees. We follow JavaScript.
    def fnv(units: list[int]) -> int:
        h = 0x811C9DC5
        for unit in units:
            h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
        return h

    assert fnv1a32("😀") == fnv([0xD83D, 0xDE00]) != fnv([0x1F600])
    assert fnv1a32("é") == fnv([0xE9])  # within the BMP both readings agree


def test_fnv_continues_from_a_prefix_state() -> None:
    assert fnv1a32("rec-algorithmu42") == fnv1a32("u42", fnv1a32("rec-algorithm"))


UNITS = [f"u{i}" for i in range(20_000)]


def experiment(**fields: Any) -> ExperimentDefinition:
    return parse_definition({"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}], **fields})


@pytest.mark.parametrize(("lower", "higher"), [(0.1, 0.5), (0.5, 1.0), (0.3, 0.31), (0.0, 1.0)])
def test_changing_coverage_never_moves_a_unit_to_another_variation(lower: float,
                                                                  higher: float) -> None:
    narrow, wide = experiment(coverage=lower), experiment(coverage=higher)
    for unit in UNITS:
        before, after = assign(narrow, unit), assign(wide, unit)
        assert before.bucket == after.bucket
        if before.in_experiment:  # in at the lower coverage: in at the higher, same variation
            assert after.variation == before.variation, unit


def test_coverage_is_the_share_of_units_in_the_experiment() -> None:
    share = sum(assign(experiment(coverage=0.3), u).in_experiment for u in UNITS) / len(UNITS)
    assert share == pytest.approx(0.3, abs=0.015)


def test_the_split_follows_the_weights() -> None:
    uneven = parse_definition({"key": "split", "status": "running", "variations": [
        {"name": "a", "weight": 0.2}, {"name": "b", "weight": 0.3}, {"name": "c", "weight": 0.5}]})
    shares = {name: 0 for name in "abc"}
    for unit in UNITS:
        variation = assign(uneven, unit).variation
        assert variation is not None
        shares[variation] += 1
    assert [shares[n] / len(UNITS) for n in "abc"] == pytest.approx([0.2, 0.3, 0.5], abs=0.015)


def test_experiments_in_disjoint_ranges_of_one_namespace_share_no_unit() -> None:
    left = experiment(key="left", namespace={"id": "homepage", "start": 0.0, "end": 0.4})
    right = experiment(key="right", namespace={"id": "homepage", "start": 0.4, "end": 1.0})

    in_left = {u for u in UNITS if assign(left, u).in_experiment}
    in_right = {u for u in UNITS if assign(right, u).in_experiment}

    assert not in_left & in_right
    assert in_left | in_right == set(UNITS)  # every unit is in exactly one (coverage 1)
    assert len(in_left) / len(UNITS) == pytest.approx(0.4, abs=0.015)


def test_a_unit_outside_the_namespace_is_never_hashed_into_the_experiment() -> None:
    narrow = experiment(namespace={"id": "homepage", "start": 0.0, "end": 0.1})
    outside = next(u for u in UNITS if not in_namespace(u, "homepage", 0.0, 0.1))

    assert assign(narrow, outside).reason == "namespace"
    assert assign(narrow, outside).bucket is None


def test_two_seeds_bucket_units_independently() -> None:
    a, b = experiment(seed="one"), experiment(seed="two")
    same = sum(assign(a, u).variation == assign(b, u).variation for u in UNITS) / len(UNITS)
    assert same == pytest.approx(0.5, abs=0.02)


def test_a_forced_unit_sees_its_variation_unhashed_and_unexposed() -> None:
    unit = next(u for u in UNITS if assign(experiment(), u).variation == "control")
    forced = experiment(forced_variations={unit: "treatment"})

    assignment = assign(forced, unit)

    assert (assignment.variation, assignment.in_experiment, assignment.forced,
            assignment.bucket, assignment.exposed) == ("treatment", True, True, None, False)


def test_forced_units_see_their_variation_in_draft_but_nobody_else_does() -> None:
    draft = experiment(status="draft", forced_variations={"u1": "treatment"})

    assert assign(draft, "u1").variation == "treatment"
    assert assign(draft, "u2").reason == "draft"


def test_a_stopped_experiment_assigns_nobody_not_even_forced_units() -> None:
    stopped = experiment(status="stopped", forced_variations={"u1": "treatment"})

    assert [assign(stopped, u).in_experiment for u in ("u1", "u2")] == [False, False]


def test_the_payload_comes_with_the_variation() -> None:
    with_payloads = parse_definition({"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
        {"name": "treatment", "weight": 0.5, "payload": {"algorithm": "ranker"}}]})
    algorithms = {assign(with_payloads, u).variation: assign(with_payloads, u).payload
                  for u in UNITS[:50]}

    assert algorithms == {"control": {"algorithm": "blend"},
                          "treatment": {"algorithm": "ranker"}}
