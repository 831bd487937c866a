"""The results' statistics against known values, and the results built from counters."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency, chisquare

from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import parse_definition
from services.designs.experiments.tallies import Timeline, VariationCounts
from services.experiments.results import cumulative_rates, experiment_results
from services.experiments.statistics import (
    minimum_detectable_lift,
    sample_size_per_arm,
    srm_test,
    two_proportion_test,
    wilson_interval,
    z_for,
)


def test_the_95_percent_quantile_is_1_96() -> None:
    assert z_for() == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(("successes", "trials", "expected"), [
    # Newcombe (1998), Statistics in Medicine 17, table I: 81/263 -> 0.2553 to 0.3662,
    # 15/148 -> 0.0624 to 0.1605, 0/20 -> 0 to 0.1611, 1/29 -> 0.0061 to 0.1718.
    (81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)),
    (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718)),
])
def test_wilson_intervals_match_the_published_ones(successes: int, trials: int,
                                                   expected: tuple[float, float]) -> None:
    assert wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("successes", "trials"), [(30, 200), (1, 1), (999, 1000), (7, 10_000)])
def test_wilson_intervals_match_scipy(successes: int, trials: int) -> None:
    ci = binomtest(successes, trials).proportion_ci(method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_no_trials_has_no_interval() -> None:
    assert wilson_interval(0, 0) is None


def test_the_two_proportion_test_of_a_known_example() -> None:
    # 200/1000 against 250/1000: pooled p 0.225, standard error 0.018675, z 2.6774, p 0.0074.
    lift = two_proportion_test(200, 1000, 250, 1000)

    assert lift is not None
    assert (lift.absolute, lift.relative) == pytest.approx((0.05, 0.25))
    assert (lift.z, lift.p_value) == pytest.approx((2.677398, 0.007420), abs=1e-6)
    assert lift.absolute_interval == pytest.approx((0.013464, 0.086536), abs=1e-6)


@pytest.mark.parametrize(("c", "nc", "t", "nt"), [(30, 200, 45, 200), (5, 50, 2, 70),
                                                  (500, 10_000, 560, 10_050)])
def test_the_z_test_p_value_is_the_uncorrected_chi_square_of_the_2x2_table(
        c: int, nc: int, t: int, nt: int) -> None:
    lift = two_proportion_test(c, nc, t, nt)
    chi2, p, _, _ = chi2_contingency([[c, nc - c], [t, nt - t]], correction=False)

    assert lift is not None
    assert (lift.z ** 2, lift.p_value) == pytest.approx((chi2, p), rel=1e-9)


@pytest.mark.parametrize(("c", "nc", "t", "nt"), [(0, 0, 5, 10), (3, 10, 0, 0), (0, 10, 0, 10),
                                                  (10, 10, 20, 20)])
def test_nothing_to_test_without_units_or_without_variance(c: int, nc: int, t: int,
                                                           nt: int) -> None:
    assert two_proportion_test(c, nc, t, nt) is None


def test_a_fair_split_is_not_flagged() -> None:
    srm = srm_test([5_030, 4_970], [0.5, 0.5])

    assert srm is not None and not srm.flagged
    assert (srm.chi_square, srm.p_value) == pytest.approx((0.36, 0.548506), abs=1e-6)


def test_a_forced_broken_split_is_flagged_as_sample_ratio_mismatch() -> None:
    # 50/50 configured; the serving path loses a fifth of treatment's units (a crashing
    # variation, a bot filter on one side): 10,000 vs 8,000.
    srm = srm_test([10_000, 8_000], [0.5, 0.5])

    assert srm is not None and srm.flagged
    assert srm.expected == (9_000, 9_000)
    assert srm.p_value < 1e-40


def test_a_split_that_matches_uneven_weights_is_not_flagged() -> None:
    srm = srm_test([2_010, 2_990, 5_000], [0.2, 0.3, 0.5])
    expected = chisquare([2_010, 2_990, 5_000], [2_000, 3_000, 5_000])

    assert srm is not None and not srm.flagged
    assert (srm.chi_square, srm.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_a_small_imbalance_alone_is_not_a_mismatch_at_0_001() -> None:
    srm = srm_test([5_150, 4_850], [0.5, 0.5])  # chi2 9.0, p 0.0027: suspicious, not flagged
    assert srm is not None and (round(srm.chi_square, 6), srm.flagged) == (9.0, False)


def test_units_in_a_variation_of_weight_zero_are_a_mismatch() -> None:
    srm = srm_test([100, 100, 3], [0.5, 0.5, 0.0])
    assert srm is not None and srm.flagged and math.isinf(srm.chi_square)


def test_no_units_no_srm_test() -> None:
    assert srm_test([0, 0], [0.5, 0.5]) is None


def counts(exposed: int, converted: int) -> VariationCounts:
    return VariationCounts(exposed=exposed, converted=converted, impressions=exposed * 3,
                           clicks=converted * 2)


def test_results_give_each_variation_its_rate_interval_and_lift_against_control() -> None:
    definition = parse_definition({"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]})

    results = experiment_results(definition, {"control": counts(1000, 200),
                                              "treatment": counts(1000, 250)})

    control, treatment = results.variations
    assert (control.name, control.rate, control.lift) == ("control", 0.2, None)
    assert control.interval == wilson_interval(200, 1000)
    assert treatment.lift is not None and treatment.lift.p_value == pytest.approx(0.00742,
                                                                                  abs=1e-5)
    assert results.srm is not None and not results.srm.flagged


def test_results_state_the_sample_the_lift_needed_beside_the_one_used() -> None:
    definition = parse_definition({"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5},
        {"name": "same", "weight": 0.0}]})

    results = experiment_results(definition, {"control": counts(1000, 200),
                                              "treatment": counts(900, 250),
                                              "same": counts(10, 2)})

    control, treatment, same = results.variations
    assert control.power is None
    assert treatment.power is not None
    assert treatment.power.units_per_arm_used == 900
    assert treatment.power.units_per_arm_needed == sample_size_per_arm(0.2, 250 / 900)
    assert treatment.power.minimum_detectable_lift == pytest.approx(
        minimum_detectable_lift(0.2, 900))
    # equal rates: no difference to size for; 10 units detect only a rise of over 50 points
    assert same.power is not None and same.power.units_per_arm_needed is None
    assert same.power.minimum_detectable_lift is not None
    assert same.power.minimum_detectable_lift > 0.5


def test_results_list_every_defined_variation_even_before_any_unit() -> None:
    definition = parse_definition({"key": "x", "status": "draft", "variations": [
        {"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]})

    results = experiment_results(definition, {})

    assert [(v.name, v.counts.exposed, v.rate, v.interval, v.lift) for v in results.variations] == [
        ("a", 0, None, None, None), ("b", 0, None, None, None)]
    assert (results.control, results.srm) == ("a", None)


def test_a_counted_variation_no_longer_defined_is_shown_but_left_out_of_the_srm_test() -> None:
    definition = parse_definition({"key": "x", "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.5}]})

    results = experiment_results(definition, {"control": counts(100, 10), "b": counts(100, 10),
                                              "old": counts(500, 10)})

    assert [(v.name, v.weight) for v in results.variations] == [
        ("control", 0.5), ("b", 0.5), ("old", None)]
    assert results.srm is not None and results.srm.observed == (100, 100)


def test_simulated_units_bucketed_by_the_hash_pass_the_srm_test() -> None:
    definition = parse_definition({"key": "rec-algorithm", "status": "running", "variations": [
        {"name": "control", "weight": 0.3}, {"name": "treatment", "weight": 0.7}]})
    tally = {"control": 0, "treatment": 0}
    for i in random.Random(7).sample(range(10_000_000), 20_000):
        variation = assign(definition, f"u{i}").variation
        assert variation is not None
        tally[variation] += 1

    srm = srm_test([tally["control"], tally["treatment"]], [0.3, 0.7])
    assert srm is not None and not srm.flagged


def test_the_plot_series_skip_instants_before_a_variation_had_units() -> None:
    timeline = Timeline(times_ms=(0, 10, 20), exposed={"a": (0, 4, 10), "b": (1, 2, 2)},
                        converted={"a": (0, 1, 5), "b": (0, 1, 2)})

    series = cumulative_rates(timeline)

    assert [(p.time_ms, p.rate) for p in series["a"]] == [(10, 0.25), (20, 0.5)]
    assert [p.rate for p in series["b"]] == [0.0, 0.5, 1.0]
    assert all(p.low <= p.rate <= p.high for points in series.values() for p in points)


# --- the power calculation ---------------------------------------------------------------------
@pytest.mark.parametrize(("p_control", "p_treatment", "expected"), [
    (0.10, 0.15, 686),   # the tabulated value without continuity correction
    (0.50, 0.60, 388),
    (0.60, 0.50, 388),   # symmetric in the direction of the difference
])
def test_the_sample_size_per_arm_matches_the_published_table(
        p_control: float, p_treatment: float, expected: int) -> None:
    assert sample_size_per_arm(p_control, p_treatment) == expected


def test_at_the_computed_sample_size_the_z_test_detects_the_difference_80_percent_of_the_time(
        ) -> None:
    p_c, p_t = 0.64, 0.68
    n = sample_size_per_arm(p_c, p_t)
    rng = np.random.default_rng(3)
    control, treatment = rng.binomial(n, p_c, 4_000), rng.binomial(n, p_t, 4_000)
    detected = [two_proportion_test(int(c), n, int(t), n).p_value < 0.05  # type: ignore[union-attr]
                for c, t in zip(control, treatment, strict=True)]
    assert np.mean(detected) == pytest.approx(0.80, abs=0.025)
    half = rng.binomial(n // 2, p_c, 4_000), rng.binomial(n // 2, p_t, 4_000)
    assert np.mean([two_proportion_test(int(c), n // 2, int(t), n // 2).p_value < 0.05  # type: ignore[union-attr]
                    for c, t in zip(*half, strict=True)]) < 0.6   # half the units: underpowered


def test_the_minimum_detectable_lift_inverts_the_sample_size() -> None:
    lift = minimum_detectable_lift(0.64, 3_000)
    assert sample_size_per_arm(0.64, 0.64 + lift) <= 3_000 < sample_size_per_arm(
        0.64, 0.64 + lift - 1e-4)
    assert minimum_detectable_lift(0.64, 12_000) == pytest.approx(lift / 2, rel=0.05)


def test_the_power_calculation_refuses_rates_it_cannot_test() -> None:
    for p_c, p_t in ((0.5, 0.5), (0.0, 0.1), (0.5, 1.0)):
        with pytest.raises(ValueError, match="two different rates"):
            sample_size_per_arm(p_c, p_t)
