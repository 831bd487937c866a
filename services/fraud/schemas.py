"""The scoring API's schemas: a transaction in, a decision with its reasons out."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from services.designs.payloads import (
    CardId,
    CustomerId,
    DeviceId,
    IpAddress,
    MerchantId,
    TerminalId,
    TransactionId,
    TransactionType,
)
from services.fraud.decide import Decision
from services.fraud.scorer import Scored
from services.fraud.transaction import Transaction

MAX_AMOUNT = 1_000_000.0  # above it an amount is a unit mistake, not a payment
# The currencies this deployment settles in; anything else is refused rather than mis-scored
# (rule thresholds and the model's amounts assume one currency's magnitudes).
Currency = Literal["EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "CAD",
                   "AUD", "NZD", "JPY", "SGD", "HKD"]


class ScoreRequest(BaseModel):
    """One card transaction to decide on. Give `card_id`, or the card's last four digits (the
    card is then known by customer and last four)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    transaction_id: TransactionId
    user_id: CustomerId
    card_id: CardId | None = None
    card_last_four: str | None = Field(None, pattern=r"^[0-9]{4}$")
    amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)
    currency: Currency
    transaction_type: TransactionType
    merchant_id: MerchantId
    merchant_category: str = Field(pattern=r"^[a-z][a-z_]{0,39}$")
    terminal_id: TerminalId | None = Field(None, description="the point of sale; default: the "
                                                             "merchant id")
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    timestamp: AwareDatetime = Field(description="ISO 8601 with its UTC offset: the offset is "
                                                 "the local time the night/weekend features use")
    ip_address: IpAddress
    device_id: DeviceId

    @model_validator(mode="after")
    def _one_card(self) -> Self:
        if (self.card_id is None) == (self.card_last_four is None):
            raise ValueError("give exactly one of card_id and card_last_four")
        return self

    def to_transaction(self) -> Transaction:
        card = self.card_id or f"{self.user_id}:last4:{self.card_last_four}"
        return Transaction(
            transaction_id=self.transaction_id, user_id=self.user_id, card_id=card,
            terminal_id=self.terminal_id or self.merchant_id, merchant_id=self.merchant_id,
            merchant_category=self.merchant_category, amount=self.amount,
            currency=self.currency, transaction_type=self.transaction_type,
            latitude=self.latitude, longitude=self.longitude, timestamp=self.timestamp,
            ip_address=str(self.ip_address), device_id=self.device_id)


class ReasonOut(BaseModel):
    code: str = Field(description="stable: a rule id, a list, ML_SCORE, ML_<feature>, ...")
    text: str
    contribution: float = Field(description="what it added to the risk score")
    source: Literal["list", "rule", "model", "policy"]


class ScoreResponse(BaseModel):
    transaction_id: str
    risk_score: float = Field(ge=0, le=1)
    risk_level: Literal["low", "medium", "high", "critical"]
    action: Literal["approve", "review", "decline"]
    reasons: list[ReasonOut]
    ml_score: float | None = Field(description="fraud probability; null without the model")
    rule_hits: list[str]
    confidence: float = Field(ge=0, le=1)
    model_version: int | None
    policy_version: str
    degraded: bool
    degraded_reasons: list[str] = Field(description="what was missing, and why")
    replayed: bool = Field(description="the decision made earlier for this transaction_id")
    processing_time_ms: float

    @classmethod
    def from_scored(cls, scored: Scored, processing_ms: float) -> Self:
        return cls.of(scored.transaction.transaction_id, scored.decision, replayed=scored.replayed,
                      processing_ms=processing_ms)

    @classmethod
    def of(cls, transaction_id: str, d: Decision, *, replayed: bool,
           processing_ms: float) -> Self:
        return cls(
            transaction_id=transaction_id, risk_score=round(d.risk_score, 4),
            risk_level=d.risk_level, action=d.action,
            reasons=[ReasonOut(code=r.code, text=r.text, contribution=round(r.contribution, 4),
                               source=r.source) for r in d.reasons],
            ml_score=None if d.ml_score is None else round(d.ml_score, 4),
            rule_hits=list(d.rule_hits), confidence=d.confidence,
            model_version=d.model_version, policy_version=d.policy_version,
            degraded=bool(d.degraded), degraded_reasons=list(d.degraded),
            replayed=replayed, processing_time_ms=round(processing_ms, 3))


class RecordedDecision(ScoreResponse):
    """A decision as it was recorded; an approval's ML factors are computed when asked for."""

    factors_computed_now: bool = Field(
        description="true: the ML_<feature> reasons were computed for this answer, from the "
                    "features the model saw, by the model version that decided")
    served_from: Literal["cache", "record"] = Field(
        description="cache: the 60-s idempotency window in Redis; record: PostgreSQL, where "
                    "the records service writes every decision from fraud-decisions")


class ErrorResponse(BaseModel):
    detail: str
