"""Which algorithm a user gets: the experiment's assignment, or the configured default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Assignment:
    experiment: str | None       # None: no experiment chose; the configured default applies
    variant: str                 # control (the weighted blend) or treatment (the ranker)


class VariantChooser(Protocol):
    def __call__(self, user_id: str) -> Assignment: ...


def fixed_variant(variant: str) -> VariantChooser:
    """Everyone gets `variant` (MLSD_RECOMMENDER_DEFAULT_VARIANT), outside any experiment."""
    assignment = Assignment(None, variant)

    def choose(user_id: str) -> Assignment:
        return assignment
    return choose
