"""Impression events: which list a user was shown, under which variant, to join clicks with."""

from __future__ import annotations

import numpy as np

from services.common.arrays import Float32Array
from services.common.bus.background import BackgroundPublisher
from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.payloads import ImpressionData, ServedFeatures
from services.recommender.schemas import ServedList
from services.recommender.variants import Assignment


def served_features(rows: Float32Array, now_s: float, version: int | None,
                    request_id: str) -> ServedFeatures:
    """The listed titles' ranker rows as the event carries them. float32 -> Python float is
    exact, so the JSON round trip gives training the very values the ranker saw."""
    return ServedFeatures(
        names=list(RANKER_FEATURE_NAMES), rows=np.asarray(rows, dtype=np.float64).tolist(),
        computed_at=now_s, request_id=request_id, model_version=version)


def impression_message(listed: ServedList, request_id: str, assignment: Assignment,
                       topic: str, latency_ms: float | None = None) -> OutboundMessage:
    """Keyed by user (one user's events stay in order); the event id is the request id."""
    data = ImpressionData(
        user_id=listed.user_id, content_ids=[item.content_id for item in listed.items],
        request_id=request_id, experiment=assignment.experiment,
        variation=assignment.variant, features=listed.features, shuffled=listed.shuffled,
        latency_ms=latency_ms)
    event = Event.new("impression", "recommender", data.model_dump(mode="json"),
                      id=f"impression:{request_id}")
    return OutboundMessage.of(topic, listed.user_id, event)


class ImpressionLog:
    """Publishes off the request path (a bounded background queue); never blocks an answer."""

    def __init__(self, publisher: BackgroundPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    def record(self, listed: ServedList, request_id: str, assignment: Assignment,
               latency_ms: float) -> None:
        self._publisher.submit(impression_message(listed, request_id, assignment, self._topic,
                                                  latency_ms))
