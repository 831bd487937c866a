"""Which algorithm a user gets: the rec-algorithm experiment in process, or the default."""

from __future__ import annotations

from typing import Any

from services.designs.experiments.assignment import Assignment, assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import parse_definition
from services.designs.experiments.store import InMemoryDefinitionStore
from services.recommender.variants import ExperimentVariant, fixed_variant


def definition(status: str = "running", **extra: Any) -> Any:
    return parse_definition({
        "key": "rec-algorithm", "status": status, "seed": "rec-algorithm",
        "hash_attribute": "user_id", "hash_version": 2, "coverage": 1.0,
        "variations": [{"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
                       {"name": "treatment", "weight": 0.5,
                        "payload": {"algorithm": "ranker"}}], **extra})


class FakeExposures:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str | None]] = []

    def record(self, assignment: Assignment, unit_id: str) -> str:
        if self.remembers(assignment.experiment, unit_id):
            return "duplicate"
        self.recorded.append((unit_id, assignment.variation))
        return "logged"

    def remembers(self, experiment: str, unit_id: str) -> bool:
        return any(unit == unit_id for unit, _ in self.recorded)


def chooser(*definitions: Any) -> tuple[ExperimentVariant, FakeExposures]:
    cache = DefinitionCache(InMemoryDefinitionStore(definitions))
    cache.refresh()
    exposures = FakeExposures()
    return ExperimentVariant(cache, "rec-algorithm", "treatment",
                             exposures), exposures  # type: ignore[arg-type]


def test_bucketed_users_get_their_variations_algorithm_and_are_exposed() -> None:
    choose, exposures = chooser(definition())
    users = [f"u{n}" for n in range(400)]
    chosen = [choose(u) for u in users]
    expected = [assign(definition(), u).variation for u in users]
    assert [c.variant for c in chosen] == expected                 # the library's hash, exactly
    assert {c.algorithm for c in chosen if c.variant == "control"} == {"blend"}
    assert {c.algorithm for c in chosen if c.variant == "treatment"} == {"ranker"}
    assert 150 < sum(c.variant == "control" for c in chosen) < 250
    assert {c.experiment for c in chosen} == {"rec-algorithm"}
    assert exposures.recorded == list(zip(users, expected, strict=True))


def test_a_stopped_or_missing_experiment_gives_everyone_the_default_unexposed() -> None:
    for choose, exposures in (chooser(definition("stopped")), chooser()):
        picked = choose("u1")
        assert (picked.experiment, picked.variant, picked.algorithm) == (
            None, "treatment", "ranker")
        assert exposures.recorded == []


def test_a_forced_qa_user_sees_the_variation_but_is_not_an_exposure() -> None:
    choose, exposures = chooser(definition(forced_variations={"u1": "control"}))
    picked = choose("u1")
    assert (picked.variant, picked.algorithm) == ("control", "blend")
    assert exposures.recorded == []


def test_the_configured_default_outside_any_experiment() -> None:
    assert fixed_variant("control")("u1").algorithm == "blend"
    assert fixed_variant("treatment")("u1").experiment is None


def challenger(version: Any = 7, status: str = "running") -> Any:
    return parse_definition({
        "key": "ranker-v7", "status": status, "hash_attribute": "user_id", "hash_version": 2,
        "variations": [{"name": "control", "weight": 0.5, "payload": {"algorithm": "ranker"}},
                       {"name": "treatment", "weight": 0.5,
                        "payload": {"algorithm": "ranker", "ranker_version": version}}]})


def row_titles() -> Any:
    return parse_definition({
        "key": "a-row-titles", "status": "running", "hash_attribute": "user_id",
        "variations": [{"name": "control", "weight": 0.5, "payload": {"row_titles": "genre"}},
                       {"name": "b", "weight": 0.5, "payload": {"row_titles": "because"}}]})


def test_with_the_configured_experiment_stopped_a_running_challengers_test_places_users(
        ) -> None:
    choose, exposures = chooser(definition("stopped"), challenger(), row_titles())
    users = [f"u{n}" for n in range(200)]
    chosen = [choose(u) for u in users]
    assert {c.experiment for c in chosen} == {"ranker-v7"}   # not the row-titles experiment
    assert {c.algorithm for c in chosen} == {"ranker"}
    assert {c.ranker_version for c in chosen if c.variant == "treatment"} == {7}
    assert {c.ranker_version for c in chosen if c.variant == "control"} == {None}
    assert [v for _, v in exposures.recorded] == [assign(challenger(), u).variation
                                                  for u in users]


def test_the_configured_experiment_while_running_takes_precedence_over_a_challengers(
        ) -> None:
    choose, _ = chooser(definition(), challenger())
    assert {choose(f"u{n}").experiment for n in range(100)} == {"rec-algorithm"}


def test_a_bad_ranker_version_or_a_stopped_challenger_gives_the_default() -> None:
    for definitions in ((challenger(version="latest"),), (challenger(status="stopped"),)):
        choose, exposures = chooser(*definitions)
        picked = choose("u1")
        assert (picked.experiment, picked.ranker_version) == (None, None)
        assert exposures.recorded == []


def test_settled_defers_a_first_exposure_and_then_answers_what_the_call_does_without_logging(
        ) -> None:
    choose, exposures = chooser(definition())
    assert choose.settled("u1") is None             # its exposure needs Redis: not on the loop
    assert exposures.recorded == []
    first = choose("u1")                             # the threaded path logs it
    assert choose.settled("u1") == first
    assert exposures.recorded == [("u1", first.variant)]   # once, not again


def test_settled_answers_at_once_when_nothing_is_to_be_logged() -> None:
    stopped, exposures = chooser(definition("stopped"))
    assert stopped.settled("u1") == stopped("u1") == fixed_variant("treatment")("u1")
    definitions = DefinitionCache(InMemoryDefinitionStore([definition()]))
    definitions.refresh()
    unlogged = ExperimentVariant(definitions, "rec-algorithm", "treatment", None)
    assert unlogged.settled("u1") == unlogged("u1")
    assert exposures.recorded == []
