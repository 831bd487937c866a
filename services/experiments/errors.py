"""What a client can get wrong, as domain errors; app.py maps each to its HTTP status once."""

from __future__ import annotations


class ExperimentsError(Exception):
    """Base of every error the experiments API answers with a 4xx."""


class UnknownExperiment(ExperimentsError):
    """No definition has this key (HTTP 404)."""


class ConflictingChange(ExperimentsError):
    """A valid definition that cannot replace the stored one, e.g. a new split for an
    experiment that already ran, or a namespace range another experiment holds (HTTP 409)."""


class KeyMismatch(ExperimentsError):
    """The body names another experiment than the path (HTTP 422)."""


class NotPoolable(ExperimentsError):
    """Experiments pooled as replications must have the same variations and weights and
    their own splits (HTTP 422)."""
