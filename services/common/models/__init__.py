"""Models: the repository on disk, ONNX Runtime sessions, hot swap, and the prediction client."""

from services.common.models.cache import ModelCache, RepositoryWatcher
from services.common.models.client import (
    LocalModelClient,
    ModelClient,
    Prediction,
    RemoteModelClient,
    create_model_client,
)
from services.common.models.errors import (
    FeatureMismatch,
    InvalidInput,
    InvalidModel,
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    NothingToRollBack,
    ProtocolError,
    VersionNotFound,
)
from services.common.models.metadata import ModelMetadata, TensorSpec
from services.common.models.repository import ModelRepository, Promotion
from services.common.models.runtime import OnnxModel
from services.common.models.settings import ModelSettings

__all__ = [
    "FeatureMismatch",
    "InvalidInput",
    "InvalidModel",
    "LocalModelClient",
    "ModelCache",
    "ModelClient",
    "ModelError",
    "ModelMetadata",
    "ModelNotFound",
    "ModelRepository",
    "ModelSettings",
    "ModelUnavailable",
    "NothingToRollBack",
    "OnnxModel",
    "Prediction",
    "Promotion",
    "ProtocolError",
    "RemoteModelClient",
    "RepositoryWatcher",
    "TensorSpec",
    "VersionNotFound",
    "create_model_client",
]
