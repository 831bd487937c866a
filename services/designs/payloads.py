"""The typed payloads of every event type: what `data` holds, which topic it goes to, its key.

Ingest validates each event's `data` with these models before publishing; consumers parse with
the same models, so producer and consumer cannot disagree on a field. Every id is opaque
(services/common/ids.py): whatever the client calls its users, titles, cards or devices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.common.bus import topics
from services.common.ids import OpaqueId
from services.designs.model_features import MATURITY_RATINGS, TRANSACTION_TYPES

UserId = OpaqueId
ContentId = OpaqueId
CustomerId = OpaqueId
CardId = OpaqueId
TerminalId = OpaqueId
MerchantId = OpaqueId
DeviceId = OpaqueId
TransactionId = OpaqueId
TransactionType = Literal["purchase", "withdrawal", "transfer", "payment"]
MaturityRating = Literal["G", "PG", "PG-13", "R", "NC-17"]


# An IPv4 address as the standard library writes it: four decimal octets, no leading zeros.
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def _canonical_ip(value: object) -> object:
    """An IPv4 or IPv6 address as the standard library writes it (`str(ip_address(...))`): the
    text every consumer keys and compares by (the online state, the lists, the features). An
    IPv4 address already written so, most traffic, comes back as is: building the address
    object and writing it again was ~6 % of the stream scorer's interpreter time (py-spy, docs/
    fraud.md). Anything else that is not a string (an address object, a number) is left to the
    str type's own error."""
    if isinstance(value, IPv4Address | IPv6Address):
        value = str(value)
    if not isinstance(value, str) or _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        address = ip_address(value)
    except ValueError:  # the error pydantic's IPvAnyAddress gave, type and text
        raise PydanticCustomError("ip_any_address",
                                  "value is not a valid IPv4 or IPv6 address") from None
    # A zone id ("fe80::1%eth0") is local to the sender's host and may hold any character,
    # including the online state's field separator.
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        raise ValueError("an IPv6 zone id (%...) is not accepted")
    return str(address)


IpAddress = Annotated[str, BeforeValidator(_canonical_ip),
                      WithJsonSchema({"type": "string", "format": "ipvanyaddress"})]
"""An IP address, kept as its canonical text."""
assert set(TransactionType.__args__) == set(TRANSACTION_TYPES)  # type: ignore[attr-defined]
assert MaturityRating.__args__ == MATURITY_RATINGS  # type: ignore[attr-defined]


def _printable(text: str) -> str:
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError("control characters are not accepted")
    return text


# A genre or actor name: trimmed, printable, short.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                 AfterValidator(_printable)]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WatchData(Payload):
    """A user watched (part of) a title."""

    user_id: UserId
    content_id: ContentId
    watch_seconds: int = Field(ge=0, le=86_400)
    completed: bool


class RatingData(Payload):
    user_id: UserId
    content_id: ContentId
    rating: int = Field(ge=1, le=5)


class ServedFeatures(Payload):
    """The ranker's inputs for each listed title, exactly as the request that built the list
    computed them: training joins a click to these rows, so what it learns from is what was
    seen (no training-serving skew by construction)."""

    names: list[str] = Field(min_length=1, max_length=64,
                             description="the columns, in the catalog's RANKER_FEATURES order")
    rows: list[list[float]] = Field(min_length=1, max_length=100,
                                    description="one row per listed title, in list order")
    computed_at: float = Field(ge=0, description="unix seconds the features were evaluated at")
    request_id: OpaqueId = Field(description="the request that computed them: this one, or, "
                                             "for a cached list, its first showing")
    model_version: int | None = Field(None, ge=0, description="the artifacts' version (item "
                                                              "embeddings) they came from")


class ImpressionData(Payload):
    """A recommendation list was shown: which titles, in which order, from which variation,
    and (when the list was computed from the user's state) the ranker features as served. An
    empty list is an impression too (nothing to show: the empty-list guardrail counts them)."""

    user_id: UserId
    content_ids: list[ContentId] = Field(max_length=100)
    request_id: OpaqueId
    experiment: str | None = Field(None, max_length=64)
    variation: str | None = Field(None, max_length=64)
    features: ServedFeatures | None = None
    shuffled: bool = Field(False, description="the titles were listed in a random order (the "
                                              "exploration slice): clicks by slot measure the "
                                              "slot's own effect")
    latency_ms: float | None = Field(None, ge=0, le=600_000, allow_inf_nan=False,
                                     description="the request's processing time as answered "
                                                 "(its processing_time_ms): what the latency "
                                                 "guardrail reads per variation")

    @model_validator(mode="after")
    def _one_row_per_title(self) -> ImpressionData:
        served = self.features
        if served is not None:
            if len(served.rows) != len(self.content_ids):
                raise ValueError("features.rows must have one row per content id")
            if any(len(row) != len(served.names) for row in served.rows):
                raise ValueError("every features row must have one value per name")
        return self


class ClickData(Payload):
    user_id: UserId
    content_id: ContentId
    position: int = Field(ge=0, le=99)
    request_id: OpaqueId | None = None


class ExposureData(Payload):
    """A unit was bucketed into an experiment's variation (logged once per unit and experiment)."""

    experiment: str = Field(min_length=1, max_length=64)
    variation: str = Field(min_length=1, max_length=64)
    unit_id: OpaqueId


class TransactionData(Payload):
    """A card transaction: the same fields as the fraud service's scoring request.

    `terminal_id` names the point of sale (card-present and online terminals alike); the
    handbook's terminal features need it.
    """

    transaction_id: TransactionId
    user_id: CustomerId
    card_id: CardId
    amount: float = Field(ge=0, le=1_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    transaction_type: TransactionType
    merchant_id: MerchantId
    merchant_category: str = Field(pattern=r"^[a-z][a-z_]{0,39}$")
    terminal_id: TerminalId
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    timestamp: AwareDatetime
    ip_address: IpAddress
    device_id: DeviceId


class FraudLabelData(Payload):
    """The truth about a transaction, known later (chargeback, confirmed fraud, cleared)."""

    transaction_id: TransactionId
    card_id: CardId
    terminal_id: TerminalId
    merchant_id: MerchantId
    transaction_time: AwareDatetime
    is_fraud: bool


class DecisionReason(Payload):
    """One reason of a decision, as the API answers it (services/fraud/schemas.py ReasonOut)."""

    code: str = Field(max_length=200)
    text: str = Field(max_length=2000)
    contribution: float
    source: Literal["list", "rule", "model", "policy"]


class FraudDecisionData(Payload):
    """A decision the fraud service made, with the feature vector the model saw (FRAUD_FEATURES
    order): joined with `fraud-labels` by transaction_id, it is the next training run's data as
    served, not as recomputed. Published to `fraud-decisions` by the fraud service; ingest does
    not accept it from clients."""

    transaction_id: TransactionId
    card_id: str = Field(max_length=160, description="the card, or customer:last4:NNNN")
    user_id: CustomerId
    transaction_time: AwareDatetime
    amount: float
    path: Literal["http", "stream"]
    risk_score: float = Field(ge=0, le=1)
    risk_level: Literal["low", "medium", "high", "critical"]
    action: Literal["approve", "review", "decline"]
    reason_codes: list[str]
    rule_hits: list[str]
    ml_score: float | None
    model_version: int | None
    policy_version: str
    degraded: list[str]
    features: list[float] | None = Field(description="FRAUD_FEATURES order; null if replayed")
    # The decision in full, so the record (PostgreSQL, services/records) answers
    # GET /v1/decisions as the 60-s cache did; absent from events written before they were added.
    reasons: list[DecisionReason] = Field(default_factory=list, description="strongest first")
    confidence: float | None = Field(None, ge=0, le=1)


class TitleData(Payload):
    """A title's metadata as the catalog knows it (the catalog ETL publishes one per title).

    Newer metadata (the envelope's time) replaces older. Genres outside the ranker's genre
    vocabulary are kept for display and ignored by the content vector; a missing maturity
    rating counts as the most restrictive one, a missing release date as the day the title
    entered the catalog (docs/recommendations.md, "Titles from the catalog").
    """

    content_id: ContentId
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
                     AfterValidator(_printable)]
    genres: list[Name] = Field(default_factory=list, max_length=20)
    actors: list[Name] = Field(default_factory=list, max_length=100)
    maturity_rating: MaturityRating | None = None
    release_date: date | None = Field(None, description="ISO 8601 date, e.g. 2026-11-21")
    rating: float | None = Field(None, ge=0, le=5, description="average rating, 0-5")
    thumbnail_url: str | None = Field(None, max_length=2048, pattern=r"^https?://\S+$")


@dataclass(frozen=True)
class EventType:
    name: str
    payload: type[Payload]
    topic: str
    key_field: str  # the entity the event is about: its id is the Kafka key


EVENT_TYPES: dict[str, EventType] = {t.name: t for t in (
    EventType("watch", WatchData, topics.WATCH_EVENTS, "user_id"),
    EventType("rating", RatingData, topics.WATCH_EVENTS, "user_id"),
    EventType("impression", ImpressionData, topics.REC_IMPRESSIONS, "user_id"),
    EventType("click", ClickData, topics.REC_CLICKS, "user_id"),
    EventType("exposure", ExposureData, topics.EXPOSURES, "unit_id"),
    EventType("transaction", TransactionData, topics.TRANSACTIONS, "card_id"),
    EventType("fraud_label", FraudLabelData, topics.FRAUD_LABELS, "card_id"),
    EventType("title", TitleData, topics.CATALOG, "content_id"),
)}


def event_time_of(payload: Payload, envelope_time: datetime) -> datetime:
    """When it happened: a transaction's own timestamp, else the envelope's time."""
    return payload.timestamp if isinstance(payload, TransactionData) else envelope_time


class UnknownEventType(ValueError):
    """The envelope's `type` is none of EVENT_TYPES."""


def payload_of(event_type: str, data: dict[str, object]) -> Payload:
    """Validate `data` as the payload of `event_type` (raises UnknownEventType, ValidationError)."""
    known = EVENT_TYPES.get(event_type)
    if known is None:
        raise UnknownEventType(f"unknown event type {event_type!r}; known: {sorted(EVENT_TYPES)}")
    return known.payload.model_validate(data)
