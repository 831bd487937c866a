"""The API's schemas: definitions out, a status change in, assignments and results out."""

from __future__ import annotations

import math
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.designs.experiments.assignment import Assignment, Reason
from services.designs.experiments.definitions import (
    HIGHER_IS_BETTER,
    ExperimentDefinition,
    Guardrail,
    Status,
)
from services.experiments.results import Power, Results, VariationResult
from services.experiments.statistics import CONFIDENCE, SRM_ALPHA, Lift, SampleRatio

DIGITS = 6


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, DIGITS)


class VariationOut(BaseModel):
    name: str
    weight: float
    payload: dict[str, JsonValue]


class NamespaceOut(BaseModel):
    id: str
    start: float
    end: float


class GuardrailOut(BaseModel):
    metric: str
    max_relative_drop: float | None = Field(description="click_through, conversion; else null")
    max_relative_rise: float | None = Field(description="empty_list_rate, latency_p99; else "
                                                        "null")
    min_units: int

    @classmethod
    def of(cls, g: Guardrail) -> Self:
        falls = g.metric in HIGHER_IS_BETTER
        return cls(metric=g.metric, max_relative_drop=g.max_relative_drop if falls else None,
                   max_relative_rise=None if falls else g.max_relative_rise,
                   min_units=g.min_units)


class ExperimentOut(BaseModel):
    key: str
    description: str
    status: Status
    seed: str
    hash_attribute: str
    hash_version: int
    coverage: float
    namespace: NamespaceOut | None
    variations: list[VariationOut]
    forced_variations: dict[str, str]
    guardrails: list[GuardrailOut]

    @classmethod
    def from_definition(cls, d: ExperimentDefinition) -> Self:
        return cls(
            key=d.key, description=d.description, status=d.status, seed=d.seed,
            hash_attribute=d.hash_attribute, hash_version=d.hash_version, coverage=d.coverage,
            namespace=None if d.namespace is None else NamespaceOut(
                id=d.namespace.id, start=d.namespace.start, end=d.namespace.end),
            variations=[VariationOut(name=v.name, weight=v.weight, payload=v.payload)
                        for v in d.variations],
            forced_variations=dict(d.forced_variations),
            guardrails=[GuardrailOut.of(g) for g in d.guardrails])


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status


class AssignmentOut(BaseModel):
    experiment: str
    variation: str | None = Field(description="the variation's name; null when not in")
    in_experiment: bool
    bucket: float | None = Field(description="the unit's hash in [0, 1); null if not hashed "
                                             "(forced, outside the namespace, not running)")
    forced: bool = Field(description="placed by forced_variations (QA): never exposed")
    reason: Reason
    payload: dict[str, JsonValue] | None

    @classmethod
    def from_assignment(cls, a: Assignment) -> Self:
        return cls(experiment=a.experiment, variation=a.variation, in_experiment=a.in_experiment,
                   bucket=a.bucket, forced=a.forced, reason=a.reason,
                   payload=None if a.payload is None else dict(a.payload))


class Interval(BaseModel):
    low: float
    high: float

    @classmethod
    def of(cls, bounds: tuple[float, float] | None) -> Self | None:
        if bounds is None:
            return None
        return cls(low=round(bounds[0], DIGITS), high=round(bounds[1], DIGITS))


class LiftOut(BaseModel):
    absolute: float = Field(description="conversion rate minus control's")
    absolute_interval: Interval = Field(description="95 % (Wald) interval of the difference")
    relative: float | None = Field(description="absolute / control's rate; null if that is 0")
    z: float
    p_value: float = Field(description="two-sided two-proportion z-test (pooled)")

    @classmethod
    def of(cls, lift: Lift | None) -> Self | None:
        if lift is None:
            return None
        interval = Interval.of(lift.absolute_interval)
        assert interval is not None
        return cls(absolute=round(lift.absolute, DIGITS), absolute_interval=interval,
                   relative=_round(lift.relative), z=round(lift.z, DIGITS),
                   p_value=round(lift.p_value, DIGITS))


class PowerOut(BaseModel):
    units_per_arm_needed: int | None = Field(
        description="units per arm a two-sided test at 5 % needs to detect the observed "
                    "difference 80 % of the time; null when the rates are equal (or 0 or 1)")
    units_per_arm_used: int = Field(description="the smaller arm's exposed units")
    minimum_detectable_lift: float | None = Field(
        description="the smallest rise over control's rate the units used detect 80 % of the "
                    "time; null when too few")

    @classmethod
    def of(cls, power: Power | None) -> Self | None:
        if power is None:
            return None
        return cls(units_per_arm_needed=power.units_per_arm_needed,
                   units_per_arm_used=power.units_per_arm_used,
                   minimum_detectable_lift=_round(power.minimum_detectable_lift))


class VariationResultOut(BaseModel):
    name: str
    weight: float | None = Field(description="null: counted, but no longer defined")
    exposed: int = Field(description="distinct units bucketed into the variation")
    converted: int = Field(description="of those, units that clicked a recommendation after "
                                       "their first exposure")
    impressions: int
    clicks: int
    conversion_rate: float | None
    interval: Interval | None = Field(description="95 % Wilson interval of the rate")
    lift: LiftOut | None = Field(description="against control; null for control itself, or "
                                             "without units in either")
    power: PowerOut | None = Field(None, description="the sample the lift needed beside the "
                                                     "one used; null for control")

    @classmethod
    def of(cls, v: VariationResult) -> Self:
        return cls(name=v.name, weight=v.weight, exposed=v.counts.exposed,
                   converted=v.counts.converted, impressions=v.counts.impressions,
                   clicks=v.counts.clicks, conversion_rate=_round(v.rate),
                   interval=Interval.of(v.interval), lift=LiftOut.of(v.lift),
                   power=PowerOut.of(v.power))


class SampleRatioOut(BaseModel):
    observed: dict[str, int]
    expected: dict[str, float] = Field(description="exposed units x each variation's weight")
    chi_square: float | None = Field(description="null (infinite) when units landed in a "
                                                 "variation of weight 0")
    p_value: float
    flagged: bool = Field(description=f"p < {SRM_ALPHA}: the split is not what the weights "
                                      "say; do not trust the results before finding why")
    threshold: float = SRM_ALPHA

    @classmethod
    def of(cls, names: list[str], srm: SampleRatio | None) -> Self | None:
        if srm is None:
            return None
        return cls(observed=dict(zip(names, srm.observed, strict=True)),
                   expected={n: round(e, DIGITS) for n, e in zip(names, srm.expected,
                                                                 strict=True)},
                   chi_square=_round(srm.chi_square), p_value=round(srm.p_value, DIGITS),
                   flagged=srm.flagged)


class BreachOut(BaseModel):
    variation: str
    metric: str
    control_rate: float = Field(description="the metric's value: a rate, or for latency_p99 "
                                            "milliseconds")
    variation_rate: float
    relative: float | None = Field(description="(variation - control) / control; null when "
                                               "control's value is 0")
    interval: Interval = Field(description="95 % interval of the absolute difference")


class ResultsOut(BaseModel):
    experiment: str
    status: Status
    control: str
    confidence: float = CONFIDENCE
    variations: list[VariationResultOut]
    sample_ratio_mismatch: SampleRatioOut | None = Field(
        description="chi-square test of exposed units against the weights; null without units")
    guardrail_breaches: list[BreachOut] = Field(
        description="guarded metrics a variation hurts now, past their tolerance "
                    "(services/experiments/guardrails.py); a running experiment with one is "
                    "stopped at the next check")

    @classmethod
    def of(cls, results: Results) -> Self:
        defined = [v.name for v in results.variations if v.weight is not None]
        return cls(experiment=results.experiment, status=results.status,
                   control=results.control,
                   variations=[VariationResultOut.of(v) for v in results.variations],
                   sample_ratio_mismatch=SampleRatioOut.of(defined, results.srm),
                   guardrail_breaches=[BreachOut(
                       variation=b.variation, metric=b.metric,
                       control_rate=round(b.control_rate, DIGITS),
                       variation_rate=round(b.variation_rate, DIGITS),
                       relative=None if b.relative is None else round(b.relative, DIGITS),
                       interval=Interval(low=round(b.interval[0], DIGITS),
                                         high=round(b.interval[1], DIGITS)))
                       for b in results.breaches])


class ErrorResponse(BaseModel):
    detail: str
