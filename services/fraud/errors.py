"""What a client can get wrong, as domain errors; app.py maps each to its HTTP status once."""

from __future__ import annotations


class FraudRequestError(Exception):
    """Base of every error the scoring API answers with a 4xx."""


class MalformedBody(FraudRequestError):
    """The body is not JSON (HTTP 400)."""


class BodyTooLarge(FraudRequestError):
    """The body is over the byte limit (HTTP 413), found before its JSON is parsed."""


class TimestampTooFarAhead(FraudRequestError):
    """The transaction's time is further in the future than clocks drift (HTTP 422)."""


class DecisionNotFound(FraudRequestError):
    """No decision is recorded for this transaction id (HTTP 404)."""


class DecisionsUnavailable(FraudRequestError):
    """The store of recorded decisions cannot be read right now (HTTP 503)."""
