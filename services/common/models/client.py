"""How services get predictions: one interface, in-process ONNX Runtime or the model server.

    client = create_model_client(settings, expected_features={"fraud": FRAUD_FEATURE_NAMES})
    prediction = client.predict("fraud", rows)          # rows: float32 [n, features]
    prediction.outputs["probabilities"][:, 1], prediction.model_version

Every failure is a ModelError: InvalidInput for the caller's mistake, ModelNotFound, and
ModelUnavailable (server down or slow, no production version, a model trained on other
features) for everything a service should answer with its degraded path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
import numpy as np
import numpy.typing as npt

from services.common.models.cache import ModelCache, RepositoryWatcher
from services.common.models.errors import (
    InvalidInput,
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    ProtocolError,
    VersionNotFound,
)
from services.common.models.oip import HEADER_LENGTH, decode_response, encode_request
from services.common.models.repository import ModelRepository
from services.common.models.runtime import check_features
from services.common.models.settings import ModelSettings

logger = logging.getLogger(__name__)

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Prediction:
    model_name: str
    model_version: int  # the version that answered: record it with the decision it made
    outputs: Mapping[str, Array]


class ModelClient(Protocol):
    """The port services depend on; LocalModelClient and RemoteModelClient are its adapters."""

    def predict(self, model_name: str, rows: Array, *, version: int | None = None) -> Prediction:
        """Every output of the model for a batch of feature rows, float32 [n, features]."""
        ...

    def ready(self, model_name: str) -> bool:
        """True when the model can answer now (for /readyz)."""
        ...

    def close(self) -> None: ...


def _require_matrix(rows: Array) -> None:
    if not isinstance(rows, np.ndarray) or rows.ndim != 2:
        raise InvalidInput("rows must be a 2-D numpy array: one row per example")


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class LocalModelClient(_Closing):
    """ONNX Runtime in this process over the repository's production versions, hot-swapped by a
    watcher thread that reads the pointers every `reload_interval_s` (None: never)."""

    def __init__(self, repository: ModelRepository, *,
                 expected_features: Mapping[str, Sequence[str]] | None = None,
                 reload_interval_s: float | None = 1.0) -> None:
        self.cache = ModelCache(repository, expected_features=expected_features)
        self._watcher = None
        if reload_interval_s is not None:
            self._watcher = RepositoryWatcher(self.cache.refresh, reload_interval_s)
            self._watcher.start()

    def predict(self, model_name: str, rows: Array, *, version: int | None = None) -> Prediction:
        _require_matrix(rows)
        model = (self.cache.production(model_name) if version is None
                 else self.cache.version(model_name, version))
        return Prediction(model_name, model.version, model.predict(rows))

    def ready(self, model_name: str) -> bool:
        try:
            self.cache.production(model_name)
        except ModelError:
            return False
        return True

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()


class RemoteModelClient(_Closing):
    """The model server over HTTP (Open Inference Protocol), one pooled keep-alive client.

    The input tensor's name is read once per model from the server's model metadata; with
    expected_features, each version that answers is checked once against them."""

    def __init__(self, base_url: str, *, timeout_s: float = 0.1, binary: bool = True,
                 expected_features: Mapping[str, Sequence[str]] | None = None,
                 max_connections: int = 16,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.timeout_s = timeout_s
        self.binary = binary
        self.expected_features = dict(expected_features or {})
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout_s, transport=transport,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        self._input_names: dict[str, str] = {}
        self._feature_checks: dict[tuple[str, int], ModelUnavailable | None] = {}

    def predict(self, model_name: str, rows: Array, *, version: int | None = None) -> Prediction:
        _require_matrix(rows)
        input_name = self._input_name(model_name)
        body, headers = encode_request({input_name: rows}, binary=self.binary)
        path = f"/v2/models/{model_name}" + ("" if version is None else f"/versions/{version}")
        try:
            response = self._send("POST", f"{path}/infer", content=body, headers=headers)
        except InvalidInput:
            self._input_names.pop(model_name, None)  # a new version may name its input anew
            raise
        except ModelNotFound as exc:
            if version is None:
                raise
            raise VersionNotFound(str(exc)) from exc
        try:
            result = decode_response(response.content, response.headers.get(HEADER_LENGTH))
            answered = int(result.model_version or "")
        except (ProtocolError, ValueError) as exc:
            raise ModelUnavailable(f"the model server answered {model_name} with a malformed "
                                   f"body: {exc}") from exc
        self._check_features(model_name, answered)
        return Prediction(model_name, answered, result.outputs)

    def ready(self, model_name: str) -> bool:
        try:
            self._send("GET", f"/v2/models/{model_name}/ready")
        except ModelError:
            return False
        return True

    def close(self) -> None:
        self._http.close()

    def _metadata(self, model_name: str, version: int | None = None) -> dict[str, Any]:
        path = f"/v2/models/{model_name}" + ("" if version is None else f"/versions/{version}")
        try:
            metadata: dict[str, Any] = self._send("GET", path).json()
        except ValueError as exc:
            raise ModelUnavailable(f"malformed metadata for {model_name}: {exc}") from exc
        return metadata

    def _input_name(self, model_name: str) -> str:
        name = self._input_names.get(model_name)
        if name is None:
            inputs = self._metadata(model_name).get("inputs") or [{}]
            name = str(inputs[0].get("name", ""))
            if len(inputs) != 1 or not name:
                raise InvalidInput(f"{model_name} does not take a single feature matrix")
            self._input_names[model_name] = name
        return name

    def _check_features(self, model_name: str, version: int) -> None:
        expected = self.expected_features.get(model_name)
        if expected is None:
            return
        key = (model_name, version)
        if key not in self._feature_checks:
            parameters = self._metadata(model_name, version).get("parameters") or {}
            try:
                check_features(f"{model_name} v{version}",
                               parameters.get("feature_names", []), expected)
                self._feature_checks[key] = None
            except ModelUnavailable as exc:
                self._feature_checks[key] = exc
        failure = self._feature_checks[key]
        if failure is not None:
            raise failure

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ModelUnavailable(f"the model server did not answer {method} {path} within "
                                   f"{self.timeout_s * 1000:.0f} ms") from exc
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"the model server is unreachable: {exc}") from exc
        if response.is_success:
            return response
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        if response.status_code == 404:
            raise ModelNotFound(message)
        if response.status_code in (400, 413, 422):
            raise InvalidInput(message)
        raise ModelUnavailable(f"the model server answered {response.status_code}: {message}")


def create_model_client(settings: ModelSettings, *,
                        expected_features: Mapping[str, Sequence[str]] | None = None
                        ) -> ModelClient:
    """The backend the settings name: build it in the app's lifespan, close it on the way out."""
    if settings.model_backend == "remote":
        return RemoteModelClient(settings.model_server_url, timeout_s=settings.model_timeout_s,
                                 binary=settings.model_binary_data,
                                 expected_features=expected_features)
    return LocalModelClient(ModelRepository(settings.model_repository),
                            expected_features=expected_features,
                            reload_interval_s=settings.model_reload_interval_s)
