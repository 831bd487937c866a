"""The service's use cases, one method each: list, change, assign (and log exposures), analyse."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from services.designs.experiments.assignment import Assignment, assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import ExperimentDefinition, InvalidDefinition, Status
from services.designs.experiments.exposures import ExposureLog
from services.designs.experiments.records import ExperimentHistory
from services.designs.experiments.store import DefinitionStore
from services.experiments.counts import CountsReader
from services.experiments.errors import ConflictingChange, KeyMismatch, UnknownExperiment
from services.experiments.lifecycle import check_change, check_neighbours
from services.experiments.metrics import ExperimentsMetrics
from services.experiments.plot import conversion_plot
from services.experiments.results import (
    Results,
    cumulative_rates,
    experiment_results,
    pooled_counts,
)


class ExperimentsService:
    """Reads (definitions, assignments) come from the in-process cache; writes go to the record
    (PostgreSQL: the definition and the change, with who made it), then to the store, after
    which the cache is refreshed at once, so this process reads its own writes (other processes
    within their refresh interval). A change the record refused is not made."""

    def __init__(self, *, store: DefinitionStore, cache: DefinitionCache, exposures: ExposureLog,
                 counts: CountsReader, metrics: ExperimentsMetrics, history: ExperimentHistory,
                 plot_points: int = 60) -> None:
        self._store = store
        self._history = history
        self._cache = cache
        self._exposures = exposures
        self._counts = counts
        self._metrics = metrics
        self._plot_points = plot_points

    def definitions(self) -> list[ExperimentDefinition]:
        return self._cache.all()

    def definition(self, key: str) -> ExperimentDefinition:
        definition = self._cache.get(key)
        if definition is None:
            known = [d.key for d in self._cache.all()]
            raise UnknownExperiment(f"no experiment {key!r}; known: {known}")
        return definition

    def put(self, key: str, new: ExperimentDefinition, actor: str = "admin API") -> bool:
        """Create or replace; whether it is new."""
        if new.key != key:
            raise KeyMismatch(f"the body's key {new.key!r} is not the path's {key!r}")
        current = self._stored(key, replacing=True)
        check_change(current, new)
        check_neighbours(new, list(self._store.snapshot().definitions))
        self._history.record("create" if current is None else "update", new, actor)
        self._store.put(new)
        self._cache.refresh()
        return current is None

    def set_status(self, key: str, status: Status,
                   actor: str = "admin API") -> ExperimentDefinition:
        current = self._stored(key, replacing=False)
        if current is None:
            raise UnknownExperiment(f"no experiment {key!r}")
        new = current.model_copy(update={"status": status})
        check_change(current, new)
        if new != current:
            self._history.record("status", new, actor)
            self._store.put(new)
            self._cache.refresh()
        return new

    def _stored(self, key: str, replacing: bool) -> ExperimentDefinition | None:
        """The stored definition; one that no longer validates may only be replaced whole."""
        try:
            return self._store.get(key)
        except InvalidDefinition as exc:
            if replacing:
                return None
            raise ConflictingChange(f"the stored definition of {key} does not validate ({exc}); "
                                    "PUT a whole definition to replace it") from exc

    def assign(self, unit_id: str, key: str | None = None) -> list[Assignment]:
        """The unit's assignment in one experiment (any status), or in every running one; the
        exposures among them are logged (one Redis round trip for all)."""
        definitions = [self.definition(key)] if key is not None else self._cache.running()
        assignments = [assign(d, unit_id) for d in definitions]
        for assignment in assignments:
            self._metrics.assigned(assignment)
        if any(a.exposed for a in assignments):
            outcomes = self._exposures.record_all(assignments, unit_id)
            for assignment, outcome in zip(assignments, outcomes, strict=True):
                self._metrics.recorded(assignment, outcome)
        return assignments

    def results(self, key: str) -> Results:
        definition = self.definition(key)
        return experiment_results(definition, self._counts.counts(key))

    def pooled_results(self, keys: Sequence[str],
                       until_ms: Sequence[int] | None = None) -> Results:
        """Replications of one test (each its own key and split) as one result; each counted
        as of its `until_ms` (when it stopped) if given, else now."""
        definitions = [self.definition(key) for key in keys]
        counts = pooled_counts(definitions, [
            self._counts.counts(key) if until_ms is None
            else self._counts.counts_until(key, until) for key, until in
            zip(keys, until_ms or [0] * len(keys), strict=True)])
        return dataclasses.replace(experiment_results(definitions[0], counts),
                                   experiment="+".join(keys))

    def results_plot(self, key: str) -> bytes:
        definition = self.definition(key)
        timeline = self._counts.timeline(key, self._plot_points)
        return conversion_plot(key, cumulative_rates(timeline), definition.control)
