"""Guardrails: a variation that significantly hurts a guarded metric stops its experiment."""

from __future__ import annotations

from typing import Any

import pytest

from services.designs.experiments.definitions import InvalidDefinition, parse_definition
from services.designs.experiments.tallies import VariationCounts
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
