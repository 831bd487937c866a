"""The A/B loop's verdict: a significant winner on a sound split, set beside the world's truth."""

from __future__ import annotations

from typing import Any

import pytest

from services.simulator.verdict import ArmTruth, decide, truth_difference


def results(control: tuple[int, int], treatment: tuple[int, int], p_value: float,
            flagged: bool = False) -> dict[str, Any]:
    """The experiments service's results JSON, the fields the verdict reads."""
    rate = treatment[1] / treatment[0] - control[1] / control[0]
    return {"control": "control", "variations": [
        {"name": "control", "weight": 0.5, "exposed": control[0], "converted": control[1],
         "lift": None},
        {"name": "treatment", "weight": 0.5, "exposed": treatment[0], "converted": treatment[1],
         "lift": {"absolute": rate, "absolute_interval": {"low": rate - 0.01,
                                                          "high": rate + 0.01},
                  "p_value": p_value}},
        {"name": "retired", "weight": None, "exposed": 5, "converted": 1, "lift": None}],
        "sample_ratio_mismatch": {"flagged": flagged, "p_value": 1e-9 if flagged else 0.5}}


def truth(control: float, treatment: float, units: int = 10_000) -> dict[str, ArmTruth]:
    return {"control": ArmTruth(units, control, 0.06, 1.1),
            "treatment": ArmTruth(units, treatment, 0.06, 1.2)}


def test_a_significant_lift_names_the_treatment_and_agrees_with_a_truth_that_says_so() -> None:
    verdict = decide(results((1000, 600), (1000, 660), 0.004), truth(0.60, 0.63))
    assert (verdict.winner, verdict.significant, verdict.trusted) == ("treatment", True, True)
    assert verdict.truth_winner == "treatment" and verdict.agrees_with_truth
    assert "treatment wins" in verdict.reason


def test_a_significant_drop_names_the_control() -> None:
    verdict = decide(results((1000, 660), (1000, 600), 0.004), truth(0.63, 0.60))
    assert verdict.winner == "control" and verdict.agrees_with_truth


def test_no_significance_no_winner_even_when_the_truth_has_one() -> None:
    verdict = decide(results((1000, 600), (1000, 615), 0.3), truth(0.60, 0.63))
    assert verdict.winner is None and not verdict.significant
    assert verdict.truth_winner == "treatment" and not verdict.agrees_with_truth
    assert "no significant difference" in verdict.reason


def test_a_broken_split_gives_no_verdict_whatever_the_p_value() -> None:
    verdict = decide(results((1000, 600), (800, 560), 1e-6, flagged=True), truth(0.60, 0.70))
    assert verdict.winner is None and not verdict.trusted
    assert "sample ratio mismatch" in verdict.reason


def test_the_truth_names_no_winner_inside_its_interval() -> None:
    control, treatment = truth(0.600, 0.601, units=500).values()
    difference, low, high = truth_difference(control, treatment)
    assert difference == pytest.approx(0.001) and low < 0 < high
    verdict = decide(results((500, 300), (500, 301), 0.9), truth(0.600, 0.601, units=500))
    assert verdict.truth_winner is None and verdict.agrees_with_truth   # neither, both agree


def test_an_arms_truth_is_the_mean_and_variance_of_its_viewers() -> None:
    arm = ArmTruth.of([0.2, 0.4, 0.6], [1.0, 2.0, 3.0])
    assert arm.units == 3
    assert arm.expected_conversion == pytest.approx(0.4)
    assert arm.expected_clicks == pytest.approx(2.0)
    assert arm.variance == pytest.approx(0.04)
    with pytest.raises(ValueError, match="two viewers"):
        ArmTruth.of([0.5], [1.0])


def test_more_than_two_arms_is_refused() -> None:
    three = results((1000, 600), (1000, 660), 0.004)
    three["variations"][2]["weight"] = 0.2
    with pytest.raises(ValueError, match="two-arm"):
        decide(three, truth(0.6, 0.63))
