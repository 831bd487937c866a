"""assign(definition, unit_id): which variation a unit sees, decided in process in microseconds.

The checks run in GrowthBook's order, so a unit lands where the GrowthBook SDK would put it:

    stopped ──▶ out            (nobody is assigned once an experiment stops)
    forced  ──▶ its variation  (QA; in draft too; never exposed, never counted)
    draft   ──▶ out
    namespace: hash v1 of the unit in "__<namespace>" outside [start, end) ──▶ out
    bucket = hash(seed, unit, version); the variation whose range holds it, else out (coverage)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.hashing import (
    choose_variation,
    fnv1a32,
    in_namespace,
    v2_from_state,
)

Reason = Literal["bucketed", "forced", "stopped", "draft", "namespace", "coverage", "no_unit"]


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variation: str | None                    # the variation's name; None when not in
    in_experiment: bool                      # sees a variation (bucketed or forced)
    bucket: float | None                     # the unit's hash in [0, 1); None if never hashed
    payload: Mapping[str, JsonValue] | None  # the variation's payload; None when not in
    forced: bool                             # placed by forced_variations (QA), not by hash
    reason: Reason                           # why: bucketed, forced, or why not in

    @property
    def exposed(self) -> bool:
        """Only units the hash put in a variation are exposures (and count in results)."""
        return self.reason == "bucketed"


def _out(definition: ExperimentDefinition, reason: Reason,
         bucket: float | None = None) -> Assignment:
    return Assignment(definition.key, None, False, bucket, None, False, reason)


def bucket_of(definition: ExperimentDefinition, unit_id: str) -> float:
    """The unit's hash for this experiment: GrowthBook's hash(seed, unit, hash_version)."""
    if definition.hash_version == 2:
        return v2_from_state(definition.seed_state, unit_id)
    return (fnv1a32(unit_id + definition.seed) % 1000) / 1000


def assign(definition: ExperimentDefinition, unit_id: str) -> Assignment:
    """The unit's assignment; `unit_id` is the value of the definition's hash_attribute."""
    status = definition.status
    if status == "stopped":
        return _out(definition, "stopped")
    forced = definition.forced_variations.get(unit_id)
    if forced is not None:
        variation = definition.variation(forced)
        assert variation is not None  # validated: forced variations name known variations
        return Assignment(definition.key, forced, True, None, variation.payload, True, "forced")
    if status == "draft":
        return _out(definition, "draft")
    if not unit_id:
        return _out(definition, "no_unit")
    namespace = definition.namespace
    if namespace is not None and not in_namespace(unit_id, namespace.id, namespace.start,
                                                  namespace.end):
        return _out(definition, "namespace")
    bucket = bucket_of(definition, unit_id)
    index = choose_variation(bucket, definition.ranges)
    if index < 0:
        return _out(definition, "coverage", bucket)
    variation = definition.variations[index]
    return Assignment(definition.key, variation.name, True, bucket, variation.payload, False,
                      "bucketed")
