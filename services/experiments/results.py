"""An experiment's results from its counters: rates with intervals, lift against control, SRM.

Pure: the definition and the stream processor's counts in, a Results out (no I/O). The unit of
analysis is the exposed unit: conversion rate = converted units / exposed units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.designs.experiments.definitions import ExperimentDefinition, Status
from services.designs.experiments.tallies import Timeline, VariationCounts
from services.experiments.errors import NotPoolable
from services.experiments.guardrails import Breach, breaches
from services.experiments.statistics import (
    Lift,
    SampleRatio,
    minimum_detectable_lift,
    sample_size_per_arm,
    srm_test,
    two_proportion_test,
    wilson_interval,
)

NOTHING = VariationCounts(exposed=0, converted=0, impressions=0, clicks=0)


@dataclass(frozen=True)
class VariationResult:
    name: str
    weight: float | None                       # None: counted, but no longer defined
    counts: VariationCounts
    rate: float | None                         # converted / exposed; None without exposures
    interval: tuple[float, float] | None       # Wilson, 95 %
    lift: Lift | None                          # against control; None for control itself
    power: Power | None = None                 # the sample it needed beside the one it had


@dataclass(frozen=True)
class Power:
    """Two-sided alpha 0.05, power 0.8 (statistics.sample_size_per_arm)."""

    units_per_arm_needed: int | None       # to detect the observed difference; None if none
    units_per_arm_used: int                # the smaller arm
    minimum_detectable_lift: float | None  # with the units used, at the control's rate


def power_of(control: VariationCounts, variation: VariationCounts) -> Power | None:
    if not control.exposed or not variation.exposed:
        return None
    p_c, p_t = control.converted / control.exposed, variation.converted / variation.exposed
    used = min(control.exposed, variation.exposed)
    try:
        needed: int | None = sample_size_per_arm(p_c, p_t)
    except ValueError:       # equal rates, or a rate of 0 or 1: no difference to size for
        needed = None
    try:
        detectable: float | None = minimum_detectable_lift(p_c, used)
    except ValueError:       # too few units to detect any rise, or p_c of 0 or 1
        detectable = None
    return Power(needed, used, detectable)


@dataclass(frozen=True)
class Results:
    experiment: str
    status: Status
    control: str
    variations: tuple[VariationResult, ...]
    srm: SampleRatio | None                    # over the defined variations' exposed units
    breaches: tuple[Breach, ...] = ()          # guardrails hurt now


def experiment_results(definition: ExperimentDefinition,
                       counts: Mapping[str, VariationCounts]) -> Results:
    weights = {v.name: v.weight for v in definition.variations}
    names = [*weights, *sorted(set(counts) - set(weights))]
    control = counts.get(definition.control, NOTHING)
    variations = []
    for name in names:
        c = counts.get(name, NOTHING)
        lift = None if name == definition.control else two_proportion_test(
            control.converted, control.exposed, c.converted, c.exposed)
        variations.append(VariationResult(
            name=name, weight=weights.get(name), counts=c,
            rate=c.converted / c.exposed if c.exposed else None,
            interval=wilson_interval(c.converted, c.exposed), lift=lift,
            power=None if name == definition.control else power_of(control, c)))
    srm = srm_test([counts.get(name, NOTHING).exposed for name in weights],
                   list(weights.values()))
    return Results(definition.key, definition.status, definition.control, tuple(variations), srm,
                   tuple(breaches(definition, counts)))


@dataclass(frozen=True)
class RatePoint:
    time_ms: int
    exposed: int
    rate: float
    low: float
    high: float


def cumulative_rates(timeline: Timeline) -> dict[str, list[RatePoint]]:
    """Each variation's cumulative conversion rate and Wilson interval at each instant it had
    exposed units (the series the plot draws)."""
    series: dict[str, list[RatePoint]] = {}
    for name, exposed in timeline.exposed.items():
        points = []
        for t, n, k in zip(timeline.times_ms, exposed, timeline.converted[name], strict=True):
            interval = wilson_interval(k, n)
            if interval is not None:
                points.append(RatePoint(t, n, k / n, *interval))
        series[name] = points
    return series


def pooled_counts(definitions: Sequence[ExperimentDefinition],
                  counts: Sequence[Mapping[str, VariationCounts]]
                  ) -> dict[str, VariationCounts]:
    """Replications of one test, their counts summed per variation; the unit is a unit in one
    replication. Sound when every replication draws its own split (its own seed): a unit then
    lands in either arm of each independently, so its replications add no correlation between
    the arms, and the z-test and SRM test above apply to the sums (docs/experiments.md)."""
    if not definitions or len(definitions) != len(counts):
        raise ValueError("one count mapping per definition, at least one")
    shape = [(v.name, v.weight) for v in definitions[0].variations]
    for definition in definitions[1:]:
        if [(v.name, v.weight) for v in definition.variations] != shape:
            raise NotPoolable(f"{definition.key} has variations {definition.variations!r}, "
                              f"not {definitions[0].key}'s: replications must be one test")
    seeds = [d.seed or d.key for d in definitions]
    if len(set(seeds)) != len(seeds):
        raise NotPoolable(f"seeds {seeds} repeat: replications with one seed share one split")
    summed: dict[str, VariationCounts] = {}
    for one in counts:
        for name, c in one.items():
            s = summed.get(name, NOTHING)
            summed[name] = VariationCounts(s.exposed + c.exposed, s.converted + c.converted,
                                           s.impressions + c.impressions, s.clicks + c.clicks)
    return summed
