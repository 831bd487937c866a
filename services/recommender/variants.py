"""Which algorithm a user gets: the rec-algorithm experiment's assignment, or the default.

The experiment's definitions are held in process (services/designs/experiments: GrowthBook's
hashing, refreshed from Redis on a thread), so assigning costs microseconds and no round trip.
A variation's payload names the algorithm: {"algorithm": "blend"} or {"algorithm": "ranker"},
and may name a registered ranker version to serve instead of production's (a challenger):
{"algorithm": "ranker", "ranker_version": 7}.

The configured experiment decides first. A user it does not place (it is stopped, absent, or
leaves them out) goes to the first other *running* experiment whose every variation names an
algorithm, by key: a challenger's test (make ab-demo starts `ranker-v<N>`) runs without a
restart or a new setting, and never overlaps the configured one while that one is running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from services.designs.experiments.assignment import Assignment as ExperimentAssignment
from services.designs.experiments.assignment import assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.exposures import ExposureLog

logger = logging.getLogger(__name__)

Algorithm = Literal["blend", "ranker"]
DEFAULT_ALGORITHMS: dict[str, Algorithm] = {"control": "blend", "treatment": "ranker"}


@dataclass(frozen=True)
class Assignment:
    experiment: str | None       # None: no experiment chose; the configured default applies
    variant: str                 # the variation's name (control, treatment) or the default's
    algorithm: Algorithm = "ranker"
    ranker_version: int | None = None  # a registered ranker to serve; None: the production one


class VariantChooser(Protocol):
    def __call__(self, user_id: str) -> Assignment: ...


def fixed_variant(variant: str) -> VariantChooser:
    """Everyone gets `variant` (control: the blend, treatment: the ranker), outside any test."""
    assignment = Assignment(None, variant, DEFAULT_ALGORITHMS[variant])

    def choose(user_id: str) -> Assignment:
        return assignment
    return choose


class ExperimentVariant:
    """The experiment's variation for bucketed (or QA-forced) users, logging each exposure once;
    everyone else, and everyone while the experiment is not running, gets the default."""

    def __init__(self, definitions: DefinitionCache, experiment: str, default: str,
                 exposures: ExposureLog | None,
                 on_exposure: Callable[[str, str], None] = lambda experiment, variation: None
                 ) -> None:
        self._definitions = definitions
        self._experiment = experiment
        self._default = fixed_variant(default)
        self._exposures = exposures
        self._on_exposure = on_exposure

    def __call__(self, user_id: str) -> Assignment:
        found = self._bucketed(user_id)
        return self._default(user_id) if found is None else self._served(*found, user_id)

    def settled(self, user_id: str) -> Assignment | None:
        """The user's assignment when choosing it costs no I/O, else None: an exposure this
        process has not handled yet needs Redis (its dedupe mark), which the event loop must
        not wait on. What __call__ would answer, with nothing to log (a repeat logs nothing)."""
        found = self._bucketed(user_id)
        if found is None:
            return self._default(user_id)
        key, assignment = found
        if (self._exposures is not None and assignment.exposed
                and not self._exposures.remembers(key, user_id)):
            return None
        return self._served(key, assignment, user_id)

    def _bucketed(self, user_id: str) -> tuple[str, ExperimentAssignment] | None:
        """The first experiment that puts the user in a variation, with that assignment."""
        for definition in self._experiments():
            assignment = assign(definition, user_id)
            if assignment.in_experiment and assignment.variation is not None:
                return definition.key, assignment
        return None

    def _experiments(self) -> list[ExperimentDefinition]:
        configured = self._definitions.get(self._experiment)
        others = [d for d in self._definitions.running()
                  if d.key != self._experiment and chooses_algorithm(d)]
        return ([configured] if configured is not None else []) + others

    def _served(self, key: str, assignment: ExperimentAssignment, user_id: str) -> Assignment:
        payload = assignment.payload or {}
        algorithm, version = payload.get("algorithm"), payload.get("ranker_version")
        if algorithm not in ("blend", "ranker") or not (
                version is None or (isinstance(version, int) and version >= 1)):
            logger.warning("variation payload names no algorithm (or a bad ranker version); "
                           "default used", extra={"experiment": key,
                                                  "variation": assignment.variation})
            return self._default(user_id)
        variation = str(assignment.variation)
        if (self._exposures is not None and assignment.exposed
                and self._exposures.record(assignment, user_id) == "logged"):
            self._on_exposure(key, variation)
        return Assignment(key, variation, "blend" if algorithm == "blend" else "ranker",
                          version if algorithm == "ranker" else None)


def chooses_algorithm(definition: ExperimentDefinition) -> bool:
    """Every variation names an algorithm: an experiment about what the recommender ranks by."""
    return all("algorithm" in (v.payload or {}) for v in definition.variations)
