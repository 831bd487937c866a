"""What the console's forms send, checked before any service is called; messages for people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_K = 50


class BadInput(ValueError):
    """A form value the console cannot send: the message says which field and why."""


def readable(error: ValidationError) -> str:
    """'field: problem; ...', the way the services' own 422s read."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                     for e in error.errors())


class ListQuery(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    user: str = Field(min_length=1, description="any opaque id: known, unknown, user_123")
    k: int = Field(10, ge=1, le=MAX_K)


def list_query(user: str | None, k: str | None) -> ListQuery:
    try:
        return ListQuery(user=user or "", k=k if k not in (None, "") else 10)
    except ValidationError as error:
        raise BadInput(readable(error)) from error


NUMBER_FIELDS = ("amount", "latitude", "longitude")
TEXT_FIELDS = ("transaction_id", "user_id", "card_id", "currency", "transaction_type",
               "merchant_id", "merchant_category", "ip_address", "device_id", "timestamp")


def score_body(form: dict[str, str]) -> dict[str, Any]:
    """The fraud form as the scoring API's JSON. Numbers must parse here (the API is strict
    about types: a number sent as text would be refused with a less helpful message); every
    other rule is the API's to check, and its 422 is shown as it is."""
    body: dict[str, Any] = {name: form[name].strip() for name in TEXT_FIELDS
                            if form.get(name, "").strip()}
    for name in NUMBER_FIELDS:
        text = form.get(name, "").strip()
        if not text:
            raise BadInput(f"{name}: required")
        try:
            body[name] = float(text)
        except ValueError:
            raise BadInput(f"{name}: not a number: {text!r}") from None
    body.setdefault("timestamp", datetime.now(UTC).isoformat())
    return body
