"""What may change once an experiment has started: status moves and the fields that stay fixed.

    draft ──▶ running ──▶ stopped
      └────────────────────▲  ▲── stopped ──▶ running (resume)

Once an experiment has run, the fields that decide who sees which variation are fixed: a new
seed, hash, split or payload would move units between variations (or change what a variation
means) mid-test, and the results would mix two experiments. Coverage and the namespace range may
change (a unit only leaves or joins, never switches), as may QA forced variations and the
description. To change the rest, start a new experiment under a new key.
"""

from __future__ import annotations

from services.designs.experiments.definitions import (
    ExperimentDefinition,
    InvalidDefinition,
    Status,
    check_namespaces,
)
from services.experiments.errors import ConflictingChange

TRANSITIONS: dict[Status, frozenset[Status]] = {
    "draft": frozenset({"draft", "running", "stopped"}),
    "running": frozenset({"running", "stopped"}),
    "stopped": frozenset({"stopped", "running"}),
}
FIXED_ONCE_STARTED = ("variations", "seed", "hash_version", "hash_attribute")


def check_transition(current: Status, wanted: Status) -> None:
    if wanted not in TRANSITIONS[current]:
        allowed = sorted(TRANSITIONS[current] - {current})
        raise ConflictingChange(f"status cannot go from {current} to {wanted}; from {current} "
                                f"it can go to {allowed}")


def check_change(current: ExperimentDefinition | None, new: ExperimentDefinition) -> None:
    """Raise ConflictingChange if `new` may not replace `current` (None: a new experiment)."""
    if current is None:
        return
    check_transition(current.status, new.status)
    if current.status == "draft":
        return
    changed = [name for name in FIXED_ONCE_STARTED
               if getattr(current, name) != getattr(new, name)]
    if changed:
        raise ConflictingChange(
            f"{current.key} has been {current.status}: {', '.join(changed)} can no longer "
            f"change (it would move units between variations); start a new experiment instead")


def check_neighbours(new: ExperimentDefinition, others: list[ExperimentDefinition]) -> None:
    """`new` must not share namespace range with any other experiment."""
    try:
        check_namespaces([new, *[d for d in others if d.key != new.key]])
    except InvalidDefinition as exc:
        raise ConflictingChange(str(exc)) from exc
