"""Which algorithm a user gets: the rec-algorithm experiment's assignment, or the default.

The experiment's definitions are held in process (services/designs/experiments: GrowthBook's
hashing, refreshed from Redis on a thread), so assigning costs microseconds and no round trip.
A variation's payload names the algorithm: {"algorithm": "blend"} or {"algorithm": "ranker"}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from services.designs.experiments.assignment import assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.exposures import ExposureLog

logger = logging.getLogger(__name__)

Algorithm = Literal["blend", "ranker"]
DEFAULT_ALGORITHMS: dict[str, Algorithm] = {"control": "blend", "treatment": "ranker"}


@dataclass(frozen=True)
class Assignment:
    experiment: str | None       # None: no experiment chose; the configured default applies
    variant: str                 # the variation's name (control, treatment) or the default's
    algorithm: Algorithm = "ranker"


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
        definition = self._definitions.get(self._experiment)
        if definition is None:
            return self._default(user_id)
        assignment = assign(definition, user_id)
        if not assignment.in_experiment or assignment.variation is None:
            return self._default(user_id)
        payload = assignment.payload or {}
        algorithm = payload.get("algorithm")
        if algorithm not in ("blend", "ranker"):
            logger.warning("variation payload names no algorithm; default used",
                           extra={"experiment": self._experiment,
                                  "variation": assignment.variation})
            return self._default(user_id)
        if (self._exposures is not None and assignment.exposed
                and self._exposures.record(assignment, user_id) == "logged"):
            self._on_exposure(self._experiment, assignment.variation)
        return Assignment(self._experiment, assignment.variation,
                          "blend" if algorithm == "blend" else "ranker")
