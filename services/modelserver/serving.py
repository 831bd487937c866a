"""What the routes call: find the model version a request names, run it, count it, administer."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from services.common.models import (
    InvalidInput,
    ModelCache,
    ModelMetadata,
    ModelRepository,
    ModelUnavailable,
    OnnxModel,
    Promotion,
    VersionNotFound,
)
from services.common.models.oip import Array, InferenceCall
from services.modelserver.metrics import ServingMetrics

VERSION = re.compile(r"^[1-9][0-9]{0,9}$")
# who the registry history names for a change made through the admin API (no user accounts here)
ADMIN_ACTOR = "model-server admin API"


@dataclass(frozen=True)
class Inference:
    model: OnnxModel
    outputs: dict[str, Array]


@dataclass(frozen=True)
class ModelState:
    """A model as an operator sees it: on disk, pointed at, and actually served here."""

    name: str
    versions: list[int]
    production_version: int | None
    serving_version: int | None
    history: list[Promotion]


def parse_version(name: str, version: str | None) -> int | None:
    """The protocol's version is a string; ours are numbers, so anything else names nothing."""
    if version is None:
        return None
    if not VERSION.match(version):
        raise VersionNotFound(f"model {name!r} has no version {version!r}")
    return int(version)


class ModelServer:
    """Every model of one repository: the production version by default, others by number."""

    def __init__(self, repository: ModelRepository, cache: ModelCache,
                 metrics: ServingMetrics) -> None:
        self.repository = repository
        self.cache = cache
        self.metrics = metrics

    def model(self, name: str, version: str | None = None) -> OnnxModel:
        number = parse_version(name, version)
        return self.cache.production(name) if number is None else self.cache.version(name, number)

    def infer(self, name: str, version: str | None, call: InferenceCall) -> Inference:
        model = self.model(name, version)
        labels = (model.name, str(model.version))
        start = time.perf_counter()
        try:
            outputs = model.run(call.inputs, call.outputs)
        except InvalidInput:
            self.metrics.requests.labels(*labels, "invalid").inc()
            raise
        except ModelUnavailable:
            self.metrics.requests.labels(*labels, "unavailable").inc()
            raise
        self.metrics.inference_duration.labels(*labels).observe(time.perf_counter() - start)
        self.metrics.requests.labels(*labels, "ok").inc()
        rows = next(iter(call.inputs.values())).shape[:1]
        self.metrics.rows.labels(*labels).inc(rows[0] if rows else 1)
        return Inference(model, outputs)

    def metadata(self, name: str, version: str | None = None) -> tuple[ModelMetadata, list[int],
                                                                         int | None]:
        """A version's metadata (the production one by default), the versions, the pointer."""
        versions = self.repository.versions(name)
        production = self.repository.production_version(name)
        number = parse_version(name, version)
        if number is None:
            number = production if production is not None else versions[-1]
        return self.repository.metadata(name, number), versions, production

    def state(self, name: str) -> ModelState:
        return ModelState(name, self.repository.versions(name),
                          self.repository.production_version(name),
                          self.cache.loaded().get(name), self.repository.history(name))

    def states(self) -> list[ModelState]:
        return [self.state(name) for name in self.repository.models()]

    def promote(self, name: str, version: int) -> ModelState:
        """Move the pointer, then load and swap at once rather than at the next poll."""
        self.repository.promote(name, version, actor=ADMIN_ACTOR)
        self.cache.refresh()
        return self.state(name)

    def rollback(self, name: str) -> ModelState:
        self.repository.rollback(name, actor=ADMIN_ACTOR)
        self.cache.refresh()
        return self.state(name)
