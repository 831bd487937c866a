"""Exposures, recommendation impressions and clicks -> per experiment-variation A/B counters."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event
from services.common.features.definitions import InvalidEntity, check_entity_id
from services.common.redis_client import RedisClient
from services.common.times import epoch_ms
from services.designs.experiments.counts import Click, Exposure, Impression, RedisExperimentCounters
from services.designs.payloads import ClickData, ExposureData, ImpressionData, event_time_of

PAYLOADS: dict[str, type[BaseModel]] = {
    "exposure": ExposureData, "impression": ImpressionData, "click": ClickData,
}


class ExperimentEventsHandler:
    """EventHandler for the exposures, rec-impressions and rec-clicks topics.

    Buffers each batch and applies it on flush() (RedisExperimentCounters: two round trips).
    Every counter is a set, so redelivery is harmless. Units are joined to clicks by id: the
    unit of a recommendation experiment is the user (ExposureData.unit_id == ClickData.user_id).
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._counters = RedisExperimentCounters(client, namespace)
        self._exposures: list[Exposure] = []
        self._impressions: list[Impression] = []
        self._clicks: list[Click] = []

    def handle(self, event: Event) -> None:
        payload = PAYLOADS.get(event.type)
        if payload is None:
            raise PoisonEvent(f"event type {event.type!r} is not an exposure, impression or click")
        try:
            data = payload.model_validate(event.data)
            self._buffer(event, data)
        except (ValidationError, InvalidEntity) as exc:
            raise PoisonEvent(f"invalid {event.type} data: {exc}") from exc

    def _buffer(self, event: Event, data: BaseModel) -> None:
        # The payloads validated every id; an experiment name is free text that becomes a hash
        # tag, so it must be an id too (InvalidEntity -> poison).
        if isinstance(data, ExposureData):
            check_entity_id(data.experiment)
            self._exposures.append(Exposure(data.experiment, data.variation, data.unit_id,
                                            epoch_ms(event_time_of(data, event.time))))
        elif isinstance(data, ImpressionData):
            if data.experiment is not None:
                check_entity_id(data.experiment)
            self._impressions.append(Impression(data.request_id, data.experiment,
                                                data.variation, empty=not data.content_ids,
                                                latency_ms=data.latency_ms))
        elif isinstance(data, ClickData):
            self._clicks.append(Click(event.id, data.user_id, data.request_id,
                                      epoch_ms(event_time_of(data, event.time))))

    def flush(self) -> None:
        if not (self._exposures or self._impressions or self._clicks):
            return
        # Cleared only once applied: a retried flush sends the same batch again (idempotent).
        self._counters.apply(self._exposures, self._impressions, self._clicks)
        self._exposures, self._impressions, self._clicks = [], [], []
