"""Experiment definitions: the typed model, its validation, and the version-controlled TOML file.

One definition says who is in an experiment and what each variation does:

    key = "rec-algorithm"   status = "running"   seed = "rec-algorithm"   hash_version = 2
    coverage = 1.0          hash_attribute = "user_id"
    variations = [{name = "control", weight = 0.5, payload = {algorithm = "blend"}},
                  {name = "treatment", weight = 0.5, payload = {algorithm = "ranker"}}]
    namespace = {id = "homepage", start = 0.0, end = 0.5}    (optional)
    forced_variations = {u1 = "treatment"}                    (QA; never counted)

Names follow GrowthBook's experiment fields (seed, hashVersion, coverage, weights, namespace),
so a definition maps one to one onto a GrowthBook experiment and buckets its units identically.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.common.ids import OpaqueId
from services.designs.experiments.hashing import Range, bucket_ranges, fnv1a32

# Keys, namespace ids and variation names end up in Redis keys (inside and after hash tags), in
# Prometheus labels and in event payloads: short, lower case, no braces or colons.
KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
VARIATION_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# A unit id is the hash attribute's value (a user id, u42): ASCII, which every GrowthBook SDK
# hashes alike, and fit for an event id and a Redis hash tag.
WEIGHT_SUM_TOLERANCE = 1e-6
MAX_VARIATIONS = 20

ExperimentKey = Annotated[str, Field(pattern=KEY_PATTERN, description="e.g. rec-algorithm")]
VariationName = Annotated[str, Field(pattern=VARIATION_PATTERN, description="e.g. control")]
Status = Literal["draft", "running", "stopped"]


class InvalidDefinition(ValueError):
    """A definition that does not validate; the message names each field and its problem."""


def _invalid(reason: str) -> PydanticCustomError:
    # Passed as context so that braces in names cannot be read as a template.
    return PydanticCustomError("invalid_definition", "{reason}", {"reason": reason})


class Variation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: VariationName
    weight: float = Field(ge=0, le=1, allow_inf_nan=False,
                          description="share of covered units; all weights sum to 1")
    payload: dict[str, JsonValue] = Field(
        default_factory=dict, description="what the variation does, e.g. {algorithm: ranker}")


class Namespace(BaseModel):
    """A slice [start, end) of a hash space shared by experiments that must not share units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ExperimentKey
    start: float = Field(ge=0, le=1, allow_inf_nan=False)
    end: float = Field(ge=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise _invalid(f"namespace start ({self.start}) must be below its end ({self.end})")
        return self

    def overlaps(self, other: Namespace) -> bool:
        return self.id == other.id and self.start < other.end and other.start < self.end


GuardrailMetric = Literal["click_through", "conversion", "empty_list_rate", "latency_p99"]
# Metrics a variation hurts by lowering them, and those it hurts by raising them.
HIGHER_IS_BETTER: frozenset[str] = frozenset({"click_through", "conversion"})
DEFAULT_TOLERANCE = 0.1


class Guardrail(BaseModel):
    """A metric a variation must not hurt: the experiment stops when a variation is worse than
    control on it, significantly (the 95 % interval of the difference lies on the harmful side of
    0) and by more than the tolerated relative change, once each arm has `min_units`. Rates that
    should stay high (click_through, conversion) tolerate `max_relative_drop`; those that should
    stay low (empty_list_rate, latency_p99) tolerate `max_relative_rise`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: GuardrailMetric = Field(
        description="click_through: clicks / impressions (lists); conversion: converted / "
                    "exposed units; empty_list_rate: lists served empty / lists; latency_p99: "
                    "the 99th percentile of the lists' processing time (ms)")
    max_relative_drop: float = Field(DEFAULT_TOLERANCE, gt=0, le=1, allow_inf_nan=False,
                                     description="click_through, conversion: e.g. 0.1: a 10 % "
                                                 "drop against control is tolerated, a larger "
                                                 "one stops the experiment")
    max_relative_rise: float = Field(DEFAULT_TOLERANCE, gt=0, le=100, allow_inf_nan=False,
                                     description="empty_list_rate, latency_p99: e.g. 0.2: a "
                                                 "20 % rise against control is tolerated")
    min_units: int = Field(1000, ge=1, description="per arm, in the metric's denominator (lists "
                                                   "for latency and empty lists) before the "
                                                   "guardrail may fire")

    @model_validator(mode="after")
    def _tolerance_fits_the_metric(self) -> Self:
        # A tolerance given for the other direction would be silently ignored: refuse it. (Its
        # default is allowed: a stored definition's dump carries both fields.)
        right, wrong = (("max_relative_drop", "max_relative_rise")
                        if self.metric in HIGHER_IS_BETTER
                        else ("max_relative_rise", "max_relative_drop"))
        if getattr(self, wrong) != DEFAULT_TOLERANCE:
            raise _invalid(f"{self.metric} is guarded by {right}, not {wrong}")
        return self

    @property
    def tolerance(self) -> float:
        """The relative worsening tolerated, in the metric's harmful direction."""
        return (self.max_relative_drop if self.metric in HIGHER_IS_BETTER
                else self.max_relative_rise)


class ExperimentDefinition(BaseModel):
    """An experiment; construct through model_validate (or the file/store), which checks it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: ExperimentKey
    description: str = Field("", max_length=500)
    status: Status = "draft"
    variations: list[Variation] = Field(min_length=2, max_length=MAX_VARIATIONS)
    coverage: float = Field(1.0, ge=0, le=1, allow_inf_nan=False,
                            description="share of (namespace-eligible) units in the experiment")
    seed: str = Field("", max_length=64, description="hash seed; empty means the key")
    hash_attribute: str = Field("user_id", pattern=r"^[a-z][a-z0-9_]{0,31}$",
                                description="which attribute's value is the unit id")
    hash_version: Literal[1, 2] = Field(2, description="GrowthBook hash version; 2 is unbiased")
    namespace: Namespace | None = None
    forced_variations: dict[OpaqueId, VariationName] = Field(
        default_factory=dict, description="QA: unit id -> variation name; never exposed")
    guardrails: list[Guardrail] = Field(
        default_factory=list, max_length=10,
        description="metrics whose breach stops the experiment (services/experiments/"
                    "guardrails.py)")

    @model_validator(mode="before")
    @classmethod
    def _seed_defaults_to_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("seed") and isinstance(data.get("key"), str):
            return {**data, "seed": data["key"]}
        return data

    @field_validator("variations")
    @classmethod
    def _unique_names_and_whole_split(cls, variations: list[Variation]) -> list[Variation]:
        names = [v.name for v in variations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _invalid(f"variation names must be unique; repeated: {duplicates}")
        total = math.fsum(v.weight for v in variations)
        if abs(total - 1) > WEIGHT_SUM_TOLERANCE:
            raise _invalid(f"variation weights must sum to 1; they sum to {total:g}")
        return variations

    @field_validator("forced_variations")
    @classmethod
    def _forced_to_known_variations(cls, forced: dict[str, str],
                                    info: ValidationInfo) -> dict[str, str]:
        names = [v.name for v in info.data.get("variations", [])]
        unknown = sorted({v for v in forced.values() if v not in names})
        if names and unknown:
            raise _invalid(f"unknown variation(s) {unknown}; known: {names}")
        return forced

    # Derived values are cached on first use (a plain attribute read after that: assign() reads
    # them on every call, and pydantic's private attributes cost ~2 us per read).
    @cached_property
    def ranges(self) -> tuple[Range, ...]:
        """Each variation's bucket range, GrowthBook's getBucketRanges of weights and coverage."""
        return tuple(bucket_ranges(len(self.variations), self.coverage,
                                   [v.weight for v in self.variations]))

    @cached_property
    def seed_state(self) -> int:
        """fnv1a32(seed): hash version 2 hashes seed + id, so the seed's part is done once."""
        return fnv1a32(self.seed)

    @property
    def control(self) -> str:
        """The baseline results compare against: the variation named control, else the first."""
        names = [v.name for v in self.variations]
        return "control" if "control" in names else names[0]

    def variation(self, name: str) -> Variation | None:
        return next((v for v in self.variations if v.name == name), None)

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Self:
        """A copy with `update` applied, validated again (pydantic's copy would skip validation
        and keep the cached ranges of the original)."""
        return type(self).model_validate({**self.model_dump(), **(update or {})})


def parse_definition(data: Any) -> ExperimentDefinition:
    """Validate one definition; InvalidDefinition names each field and its problem."""
    try:
        return ExperimentDefinition.model_validate(data)
    except ValidationError as exc:
        raise InvalidDefinition(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'definition'}: {e['msg']}"
                     for e in exc.errors(include_url=False))


def check_namespaces(definitions: list[ExperimentDefinition]) -> None:
    """Experiments in one namespace must hold disjoint ranges, or they could share units."""
    placed = [d for d in definitions if d.namespace is not None]
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            assert a.namespace is not None and b.namespace is not None
            if a.namespace.overlaps(b.namespace):
                raise InvalidDefinition(
                    f"{a.key} and {b.key} overlap in namespace {a.namespace.id}: "
                    f"[{a.namespace.start}, {a.namespace.end}) and "
                    f"[{b.namespace.start}, {b.namespace.end})")


def load_definitions_file(path: Path) -> list[ExperimentDefinition]:
    """The `[[experiments]]` tables of a TOML file, validated; InvalidDefinition names the file,
    the experiment and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidDefinition(f"{path}: {exc}") from exc
    tables = data.get("experiments", [])
    if not isinstance(tables, list):
        raise InvalidDefinition(f"{path}: `experiments` must be an array of tables")
    definitions = []
    for i, table in enumerate(tables):
        try:
            definitions.append(parse_definition(table))
        except InvalidDefinition as exc:
            name = table.get("key", f"#{i}") if isinstance(table, dict) else f"#{i}"
            raise InvalidDefinition(f"{path}: experiment {name}: {exc}") from exc
    keys = [d.key for d in definitions]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InvalidDefinition(f"{path}: experiment keys repeated: {repeated}")
    try:
        check_namespaces(definitions)
    except InvalidDefinition as exc:
        raise InvalidDefinition(f"{path}: {exc}") from exc
    return definitions
