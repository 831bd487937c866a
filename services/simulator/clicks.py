"""What a simulated viewer does with a list: the world's click model, one draw, and its events.

The viewing world knows every user's true taste (the generator's logits). A user shown a list
clicks slot p with P = (1 + p)^-0.8 x sigmoid(logit - offset) (services/trainer/worlds/viewing.py
`click_probability`); the expected number of clicks of a list is the sum of those P, which the
demo reports next to the sampled clicks: it says what the A/B test would find with infinite users.
So is the chance of at least one click, 1 - prod(1 - P): the truth behind the conversion rate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from services.trainer.worlds.viewing import ViewingWorld, click_probability


@dataclass(frozen=True)
class Shown:
    """One answer of the recommender, as the simulated viewer saw it."""

    user_id: str
    request_id: str
    variant: str
    content_ids: tuple[str, ...]


@dataclass(frozen=True)
class Reaction:
    shown: Shown
    expected_clicks: float
    clicked: tuple[int, ...]            # 0-based slots clicked
    expected_conversion: float = 0.0    # P(at least one click on the list): 1 - prod(1 - P)


def react(world: ViewingWorld, shown: Shown, rng: np.random.Generator) -> Reaction:
    """One draw of the click model for this list (nothing clicked on an empty list)."""
    if not shown.content_ids:
        return Reaction(shown, 0.0, ())
    slots = np.arange(len(shown.content_ids))
    p = click_probability(world, shown.user_id, list(shown.content_ids), slots)
    clicked = np.flatnonzero(rng.random(len(p)) < p)
    return Reaction(shown, float(p.sum()), tuple(int(s) for s in clicked),
                    float(1.0 - np.prod(1.0 - p)))


def click_events(reaction: Reaction, source: str = "ab-demo") -> list[dict[str, Any]]:
    """The ingest events of the clicks: each names the list it came from (request_id)."""
    shown = reaction.shown
    now = datetime.now(UTC).isoformat()
    return [{"id": f"click-{uuid.uuid4().hex}", "type": "click", "source": source, "time": now,
             "data": {"user_id": shown.user_id, "content_id": shown.content_ids[slot],
                      "position": slot, "request_id": shown.request_id}}
            for slot in reaction.clicked]
