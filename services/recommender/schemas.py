"""What the recommendation API answers (one schema per direction; the request is a path + k)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.designs.payloads import ServedFeatures
from services.recommender.explain import RecommendationType

ServedFrom = Literal["cache", "computed", "fallback"]
Fallback = Literal["feature_store", "model", "catalog"]


class RecommendedItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    content_id: str
    title: str
    genres: list[str]
    score: float = Field(description="the algorithm's relevance: the ranker's probability "
                                     "(treatment) or the weighted blend (control)")
    recommendation_type: RecommendationType
    explanation: str


class RecommendationList(BaseModel):
    """A computed list as it is cached: everything that does not change per request."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    items: list[RecommendedItem]
    variant: str
    experiment: str | None = Field(description="the experiment that chose the variant, if any")
    model_version: int | None = Field(description="the ranker version whose embeddings (and, "
                                                  "in the treatment, model) built the list")
    personalization: Literal["full", "light", "cold"] = Field(
        description="full: enough history; light: fewer than 5 watch events, content weighted "
                    "up; cold: no history, popular and trending")
    watch_count: int = Field(description="the user's watch events the list was built from")


class ServedList(RecommendationList):
    """A computed list as the service keeps it (cache, impression): the API's fields plus the
    ranker features its titles were listed with, which the API does not show."""

    features: ServedFeatures | None = None
    shuffled: bool = False    # listed in a random order: the exploration slice
    # What built it, which a stored list is checked against (service.py, `built_as_now`): the
    # ranker version whose scores ordered it (None: no ranker, the blend: the control, a cold
    # user), and the ranker artifacts its candidates and features came from
    # (ItemArtifacts.ranker_digest; "": unknown, a list stored before these fields: a miss).
    ranked_by: int | None = None
    artifacts: str = ""

    def public(self) -> dict[str, Any]:
        """The API's fields, as they are: validated when the list was built or read back."""
        return {name: getattr(self, name) for name in RecommendationList.model_fields}


class RecommendationsResponse(RecommendationList):
    request_id: str = Field(description="names this impression; send it back with a click")
    served_from: ServedFrom
    fallbacks: list[Fallback] = Field(
        description="dependencies this answer was made without: feature_store (Redis: the "
                    "in-process popular snapshot), model (ranker: the blend), catalog (no "
                    "model loaded: an empty list)")
    processing_time_ms: float


class ErrorResponse(BaseModel):
    detail: str


_STORED_FEATURES = b',"features":'


def cached_response_json(stored: bytes | None, listed: ServedList, request_id: str,
                         processing_time_ms: float) -> bytes:
    """A cached answer's JSON: the stored list's bytes up to its first field the API does not
    show (ServedList writes RecommendationList's fields first, `features` next), then this
    request's fields. Nothing parsed is serialised again: what was validated when the list was
    built goes out as it was stored. `stored` None: `listed` differs from the stored bytes (its
    variant and experiment are this request's), so it is serialised.

    `,"features":` cannot occur earlier: inside a JSON string every quote is escaped."""
    per_request = json.dumps({"request_id": request_id, "served_from": "cache", "fallbacks": [],
                              "processing_time_ms": processing_time_ms},
                             separators=(",", ":")).encode()
    cut = -1 if stored is None else stored.rfind(_STORED_FEATURES)
    if stored is None or cut < 0:   # relabelled, or not ServedList's layout: serialise it
        return RecommendationsResponse.model_construct(
            **listed.public(), **json.loads(per_request)).model_dump_json().encode()
    return stored[:cut] + b"," + per_request[1:]
