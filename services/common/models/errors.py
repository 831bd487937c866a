"""What can go wrong with a model, as exceptions services map to HTTP or to a degraded answer."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every model error: catch this to fall back (rules only, a popularity ranking)."""


class ModelNotFound(ModelError, LookupError):
    """No model of that name in the repository (or on the model server)."""


class VersionNotFound(ModelNotFound):
    """The model exists but not that version."""


class InvalidModel(ModelError, ValueError):
    """The bytes or their description cannot be registered: not ONNX, not loadable, names that
    do not fit the graph, an extra file with a path in its name."""


class InvalidInput(ModelError, ValueError):
    """The tensors sent do not fit the model: an unknown or missing input, a wrong datatype,
    shape or element count, an unknown output. The caller's mistake (HTTP 400)."""


class ProtocolError(ModelError, ValueError):
    """Bytes on the wire that do not follow the Open Inference Protocol (HTTP 400 on the server;
    on the client a malformed answer, so it is also a reason to treat the model as unavailable)."""


class NothingToRollBack(ModelError):
    """Rollback asked for a model whose promotion history has no earlier production version."""


class ModelUnavailable(ModelError, ConnectionError):
    """The model cannot answer now: no production version, a version that failed to load, the
    model server down, slow (timeout) or failing. A ConnectionError, so callers treat it like
    any dependency outage and serve a degraded answer."""


class FeatureMismatch(ModelUnavailable):
    """The model was trained on other features (names or order) than the catalog's: using it
    would be train/serve skew, so for this caller the model is unavailable."""
