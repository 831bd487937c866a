"""Guardrails: a variation that significantly hurts a guarded metric stops its experiment."""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from services.designs.experiments.definitions import InvalidDefinition, parse_definition
from services.designs.experiments.tallies import (
    LATENCY_QUANTILE,
    Quantile,
    VariationCounts,
    quantile_ranks,
)
from services.experiments.guardrails import breaches
from tests.support.experiments_fakes import definition


def guarded(metric: str = "click_through", max_relative_drop: float = 0.1,
            min_units: int = 1000, **changes: Any) -> dict[str, Any]:
    return definition(status="running", guardrails=[
        {"metric": metric, "max_relative_drop": max_relative_drop, "min_units": min_units}],
        **changes)


def lists(impressions: int, clicks: int, exposed: int = 5000,
          converted: int = 1000) -> VariationCounts:
    return VariationCounts(exposed=exposed, converted=converted, impressions=impressions,
                           clicks=clicks)


@pytest.mark.parametrize("control, treatment, breached", [
    (lists(10_000, 1000), lists(10_000, 700), True),     # -30 %, far outside chance
    (lists(10_000, 1000), lists(10_000, 950), False),    # -5 %: within the tolerated 10 %
    (lists(10_000, 1000), lists(10_000, 1300), False),   # better is never a breach
    (lists(500, 50), lists(500, 20), False),             # -60 % but under min_units per arm
    (lists(1_000, 100), lists(1_000, 85), False),        # -15 %, yet chance could do it
])
def test_a_guardrail_fires_only_on_a_significant_drop_past_its_tolerance(
        control: VariationCounts, treatment: VariationCounts, breached: bool) -> None:
    found = breaches(parse_definition(guarded()), {"control": control, "treatment": treatment})
    assert bool(found) is breached
    if breached:
        assert found[0].variation == "treatment" and found[0].relative == pytest.approx(-0.3)
        assert found[0].interval[1] < 0


def test_a_conversion_guardrail_reads_converted_over_exposed_units() -> None:
    definition_ = parse_definition(guarded("conversion"))
    same_lists = {"control": lists(10_000, 1000, exposed=5000, converted=1000),
                  "treatment": lists(10_000, 1000, exposed=5000, converted=600)}
    found = breaches(definition_, same_lists)
    assert [(b.metric, b.variation) for b in found] == [("conversion", "treatment")]
    assert found[0].control_rate == pytest.approx(0.2)


def test_a_guardrail_with_a_bad_metric_or_tolerance_is_refused() -> None:
    for bad in ({"metric": "revenue"}, {"metric": "conversion", "max_relative_drop": 0},
                {"metric": "conversion", "min_units": 0}):
        with pytest.raises(InvalidDefinition, match="guardrails"):
            parse_definition(definition(guardrails=[bad]))


def served(lists: int, empty: int) -> VariationCounts:
    return VariationCounts(exposed=5000, converted=1000, impressions=lists, clicks=lists // 10,
                           empty=empty)


def rising(metric: str, max_relative_rise: float = 0.2, min_units: int = 1000) -> dict[str, Any]:
    return definition(status="running", guardrails=[
        {"metric": metric, "max_relative_rise": max_relative_rise, "min_units": min_units}])


@pytest.mark.parametrize("control, treatment, breached", [
    (served(10_000, 100), served(10_000, 300), True),    # 1 % -> 3 % empty, far outside chance
    (served(10_000, 100), served(10_000, 115), False),   # +15 %: within the tolerated 20 %
    (served(10_000, 300), served(10_000, 100), False),   # fewer empty lists is never a breach
    (served(500, 5), served(500, 50), False),            # x10 but under min_units per arm
    (served(1_000, 10), served(1_000, 18), False),       # +80 %, yet chance could do it
])
def test_an_empty_list_guardrail_fires_only_on_a_significant_rise_past_its_tolerance(
        control: VariationCounts, treatment: VariationCounts, breached: bool) -> None:
    found = breaches(parse_definition(rising("empty_list_rate")),
                     {"control": control, "treatment": treatment})
    assert bool(found) is breached
    if breached:
        assert (found[0].metric, found[0].relative) == ("empty_list_rate", pytest.approx(2.0))
        assert found[0].interval[0] > 0


def test_empty_lists_in_a_variation_whose_control_served_none_breach_without_a_ratio() -> None:
    found = breaches(parse_definition(rising("empty_list_rate")),
                     {"control": served(10_000, 0), "treatment": served(10_000, 200)})
    assert [(b.variation, b.relative, b.control_rate) for b in found] == [
        ("treatment", None, 0.0)]
    assert "control at 0" in found[0].describe()


def timed(samples: list[float]) -> VariationCounts:
    """An arm whose p99 and interval are read from these samples as Redis would (by rank)."""
    ordered = sorted(samples)
    low, point, high = quantile_ranks(len(ordered), LATENCY_QUANTILE)
    return VariationCounts(exposed=5000, converted=1000, impressions=len(ordered), clicks=0,
                           latency=Quantile(LATENCY_QUANTILE, len(ordered), ordered[point],
                                            ordered[low], ordered[high]))


def latencies(n: int, scale_ms: float, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(np.log(scale_ms), 0.5, n))


@pytest.mark.parametrize("scale, n, breached", [
    (2.0, 5000, True),     # every request twice as slow: p99 doubles
    (1.05, 5000, False),   # 5 % slower: within the tolerated 20 %
    (1.0, 5000, False),    # the same distribution (another draw): chance only
    (0.5, 5000, False),    # faster is never a breach
    (2.0, 500, False),     # under min_units per arm
])
def test_a_latency_guardrail_fires_only_when_the_p99_rises_significantly_past_tolerance(
        scale: float, n: int, breached: bool) -> None:
    control, treatment = timed(latencies(n, 20, 1)), timed(latencies(n, 20 * scale, 2))
    found = breaches(parse_definition(rising("latency_p99")),
                     {"control": control, "treatment": treatment})
    assert bool(found) is breached
    if breached:
        assert found[0].metric == "latency_p99" and found[0].interval[0] > 0
        assert found[0].variation_rate == treatment.latency.value  # type: ignore[union-attr]


def test_a_latency_guardrail_waits_for_logged_latencies_in_both_arms() -> None:
    no_latency = VariationCounts(exposed=5000, converted=1000, impressions=5000, clicks=0)
    found = breaches(parse_definition(rising("latency_p99")),
                     {"control": no_latency, "treatment": timed(latencies(5000, 80, 2))})
    assert found == []


@pytest.mark.parametrize("n", [1000, 5000, 100_000])
def test_the_p99_interval_covers_the_true_quantile_at_its_stated_rate(n: int) -> None:
    rng = np.random.default_rng(n)
    truth = float(np.exp(NormalDist().inv_cdf(LATENCY_QUANTILE)))  # lognormal(0, 1)'s p99
    runs, covered = 400, 0
    for _ in range(runs):
        ordered = np.sort(rng.lognormal(0.0, 1.0, n))
        low, point, high = quantile_ranks(n, LATENCY_QUANTILE)
        assert low <= point <= high
        covered += ordered[low] <= truth <= ordered[high]
    # 97.5 % nominal; 400 runs put the observed share within about +-1.6 % of it
    assert covered / runs >= 0.95


def test_a_tolerance_for_the_other_direction_is_refused() -> None:
    with pytest.raises(InvalidDefinition, match="latency_p99 is guarded by max_relative_rise"):
        parse_definition(definition(guardrails=[
            {"metric": "latency_p99", "max_relative_drop": 0.5}]))
    with pytest.raises(InvalidDefinition, match="conversion is guarded by max_relative_drop"):
        parse_definition(definition(guardrails=[
            {"metric": "conversion", "max_relative_rise": 0.5}]))


def test_a_guarded_definition_survives_its_own_round_trip() -> None:
    parsed = parse_definition(rising("latency_p99", max_relative_rise=0.5))
    assert parse_definition(parsed.model_dump()) == parsed
    assert parsed.guardrails[0].tolerance == 0.5
