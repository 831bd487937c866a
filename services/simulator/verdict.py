"""An A/B test's verdict, pure: a significant winner, on a sound split, beside the truth.

    results (experiments service) ── SRM flagged? ── yes ─▶ no verdict: the split is broken
                                        │ no
                                   lift p < alpha? ── no ─▶ no winner: no significant difference
                                        │ yes
                                   winner: the arm the lift favours
    truth (the world's click model) ─▶ each arm's expected conversion, 1 - prod(1 - P) per list
                                   ─▶ the arm the truth favours (its 95 % interval excludes 0)
    agrees_with_truth: the test named the arm the truth names (or neither)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALPHA = 0.05
Z95 = 1.959964


@dataclass(frozen=True)
class ArmTruth:
    """What the world's click model expected of one arm's lists (no click-sampling noise)."""

    units: int
    expected_conversion: float           # mean over the arm's viewers of P(at least one click)
    variance: float                      # of those per-viewer values
    expected_clicks: float               # mean expected clicks per list

    @classmethod
    def of(cls, conversions: Sequence[float], clicks: Sequence[float]) -> ArmTruth:
        n = len(conversions)
        if n < 2:
            raise ValueError("an arm's truth needs at least two viewers")
        mean = math.fsum(conversions) / n
        variance = math.fsum((c - mean) ** 2 for c in conversions) / (n - 1)
        return cls(n, mean, variance, math.fsum(clicks) / n)


def truth_difference(control: ArmTruth, treatment: ArmTruth) -> tuple[float, float, float]:
    """Treatment minus control expected conversion, with its normal 95 % interval (the arms hold
    different viewers, so the interval is the viewers' sampling, not the clicks')."""
    difference = treatment.expected_conversion - control.expected_conversion
    half = Z95 * math.sqrt(control.variance / control.units + treatment.variance / treatment.units)
    return difference, difference - half, difference + half


@dataclass(frozen=True)
class Verdict:
    winner: str | None           # the variation the test declares better; None: no verdict
    significant: bool
    trusted: bool                # the split passed the sample-ratio check
    truth_winner: str | None     # the variation the truth favours beyond its interval
    agrees_with_truth: bool
    reason: str


def decide(results: Mapping[str, Any], truth: Mapping[str, ArmTruth],
           alpha: float = ALPHA) -> Verdict:
    """The verdict of a two-arm test from the experiments service's results JSON."""
    control = str(results["control"])
    arms = [v for v in results["variations"] if v.get("weight") is not None]
    treatments = [v for v in arms if v["name"] != control]
    if len(treatments) != 1:
        raise ValueError(f"a two-arm test is needed, got variations {[v['name'] for v in arms]}")
    treatment = treatments[0]
    name = str(treatment["name"])
    difference, low, high = truth_difference(truth[control], truth[name])
    truth_winner = name if low > 0 else control if high < 0 else None
    srm = results.get("sample_ratio_mismatch")
    lift = treatment.get("lift")
    if srm is None or srm["flagged"] or lift is None:
        why = ("no units to test" if srm is None or lift is None else
               f"sample ratio mismatch (p = {srm['p_value']:.2g}): the split is broken")
        return Verdict(None, False, srm is not None and not srm["flagged"], truth_winner,
                       False, f"no verdict: {why}")
    significant = lift["p_value"] < alpha
    winner = (name if lift["absolute"] > 0 else control) if significant else None
    reason = (f"{winner} wins: conversion lift {lift['absolute']:+.4f} (95 % CI "
              f"{lift['absolute_interval']['low']:+.4f} to {lift['absolute_interval']['high']:+.4f}"
              f"), p = {lift['p_value']:.2g}" if significant else
              f"no significant difference: lift {lift['absolute']:+.4f}, p = "
              f"{lift['p_value']:.2g} >= {alpha}")
    return Verdict(winner, significant, True, truth_winner, winner == truth_winner,
                   f"{reason}; the truth: {difference:+.4f} expected conversion "
                   f"({low:+.4f} to {high:+.4f})")
