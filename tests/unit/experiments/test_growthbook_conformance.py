"""GrowthBook's published SDK conformance cases, run against our assignment (the vendored file).

tests/unit/experiments/data/growthbook/cases.json is GrowthBook's `packages/sdk-js/test/cases.json`
unchanged (its SOURCE.md gives the commit, version and licence). Every case of the sections that
decide who sees what runs here; the `run` cases that need what a definition of ours cannot say
are listed in NOT_EXPRESSED with the reason, so a new case in a newer file fails until someone
decides which it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import InvalidDefinition, parse_definition
from services.designs.experiments.hashing import (
    bucket_ranges,
    choose_variation,
    equal_weights,
    gb_hash,
    in_namespace,
)

DATA = Path(__file__).parent / "data" / "growthbook"
CASES: dict[str, Any] = json.loads((DATA / "cases.json").read_text("utf-8"))

# What a definition of ours expresses: the experiment fields and the context's QA overrides.
EXPERIMENT_FIELDS = {"key", "variations", "weights", "coverage", "seed", "hashVersion",
                     "namespace", "active", "hashAttribute"}
CONTEXT_FIELDS = {"attributes", "forcedVariations"}
# The SDK features outside assignment by hash: targeting is the caller's, QA mode and URL
# overrides are a browser SDK's, explicit ranges and `force` have no field in our definitions.
WHY_NOT = {"condition": "targeting condition", "parentConditions": "prerequisite flag",
           "filters": "hash filters", "ranges": "explicit bucket ranges",
           "force": "forced by the experiment", "qaMode": "QA mode", "enabled": "SDK switched off",
           "url": "query-string override", "features": "prerequisite flag",
           "savedGroups": "saved groups"}
# GrowthBook runs a one-variation experiment (nobody is in it); we refuse the definition.
REFUSED = {"single variation": "at least 2 items"}


def unexpressed(context: dict[str, Any], experiment: dict[str, Any]) -> list[str]:
    fields = (set(experiment) - EXPERIMENT_FIELDS) | (set(context) - CONTEXT_FIELDS)
    return sorted(WHY_NOT[f] for f in fields)


RUN = [c for c in CASES["run"] if not unexpressed(c[1], c[2]) and c[0] not in REFUSED]
NOT_EXPRESSED = {c[0]: unexpressed(c[1], c[2]) for c in CASES["run"] if unexpressed(c[1], c[2])}


def definition_of(context: dict[str, Any], experiment: dict[str, Any]) -> dict[str, Any]:
    """A GrowthBook experiment (and its context's forcedVariations) as our definition's fields."""
    n = len(experiment["variations"])
    names = [f"v{i}" for i in range(n)]
    weights = experiment.get("weights", equal_weights(n))
    unit = unit_of(context, experiment)
    index = context.get("forcedVariations", {}).get(experiment["key"])
    namespace = experiment.get("namespace")
    return {
        "key": experiment["key"], "seed": experiment.get("seed", ""),
        "status": "running" if experiment.get("active", True) else "stopped",
        "hash_version": experiment.get("hashVersion", 1),  # GrowthBook's default
        "coverage": experiment.get("coverage", 1.0),
        "variations": [{"name": name, "weight": w}
                       for name, w in zip(names, weights, strict=True)],
        "namespace": None if namespace is None else dict(zip(("id", "start", "end"),
                                                             namespace, strict=True)),
        "forced_variations": {} if index is None or not unit else {unit: names[index]}}


def unit_of(context: dict[str, Any], experiment: dict[str, Any]) -> str:
    """The hash attribute's value as a string; "" when missing or null (GrowthBook: not in)."""
    value = context.get("attributes", {}).get(experiment.get("hashAttribute", "id"))
    return "" if value is None else str(value)


def test_the_vendored_file_is_the_version_its_source_note_names() -> None:
    assert CASES["specVersion"] == "0.8.0"
    assert "0.8.0" in (DATA / "SOURCE.md").read_text("utf-8")
    assert "MIT" in (DATA / "LICENSE").read_text("utf-8")


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_matches_growthbook(seed: str, value: str, version: int,
                                 expected: float | None) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), CASES["getBucketRange"],
                         ids=[c[0] for c in CASES["getBucketRange"]])
def test_bucket_ranges_match_growthbook(name: str, args: list[Any],
                                        expected: list[list[float]]) -> None:
    n, coverage, weights = args
    # The published ranges are rounded (0.4 + 0.5999 is 0.9999000000000001 in binary floats).
    assert [list(r) for r in bucket_ranges(n, coverage, weights)] == [
        pytest.approx(r, abs=1e-9) for r in expected]


@pytest.mark.parametrize(("name", "bucket", "ranges", "expected"), CASES["chooseVariation"],
                         ids=[c[0] for c in CASES["chooseVariation"]])
def test_choose_variation_matches_growthbook(name: str, bucket: float,
                                             ranges: list[list[float]], expected: int) -> None:
    assert choose_variation(bucket, [(a, b) for a, b in ranges]) == expected


@pytest.mark.parametrize(("name", "unit", "namespace", "expected"), CASES["inNamespace"],
                         ids=[c[0] for c in CASES["inNamespace"]])
def test_in_namespace_matches_growthbook(name: str, unit: str, namespace: list[Any],
                                         expected: bool) -> None:
    assert in_namespace(unit, *namespace) is expected


@pytest.mark.parametrize(("n", "expected"), CASES["getEqualWeights"])
def test_equal_weights_match_growthbook(n: int, expected: list[float]) -> None:
    # Published to 8 decimals (0.33333333); ours are exact thirds.
    assert equal_weights(n) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("name", "context", "experiment", "value", "in_experiment",
                          "hash_used"), RUN, ids=[c[0] for c in RUN])
def test_assign_puts_each_unit_where_growthbook_does(
        name: str, context: dict[str, Any], experiment: dict[str, Any], value: Any,
        in_experiment: bool, hash_used: bool) -> None:
    assignment = assign(parse_definition(definition_of(context, experiment)),
                        unit_of(context, experiment))

    assert assignment.in_experiment is in_experiment
    assert assignment.exposed is hash_used  # GrowthBook tracks exposures when the hash was used
    # GrowthBook answers variation 0's value outside the experiment; we answer no variation.
    expected = f"v{experiment['variations'].index(value)}" if in_experiment else None
    assert assignment.variation == expected


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_we_refuse_what_growthbook_runs_as_nobody_in(name: str) -> None:
    case = next(c for c in CASES["run"] if c[0] == name)
    assert case[4] is False  # GrowthBook: not in the experiment

    with pytest.raises(InvalidDefinition, match=REFUSED[name]):
        parse_definition(definition_of(case[1], case[2]))


def test_every_run_case_is_checked_or_named_with_its_reason() -> None:
    assert len(RUN) + len(NOT_EXPRESSED) + len(REFUSED) == len(CASES["run"])
    assert len(RUN) == 52  # a newer file changes this count: read its new cases first
    assert all(NOT_EXPRESSED.values())
