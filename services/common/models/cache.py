"""Loaded models, kept on each model's production version: load the new one, then swap.

A refresh reads every watched model's pointer. When it moved, the new version's session is
built and warmed up completely, then one dict assignment makes it the production model. A
request that already holds the old model finishes on it (Python keeps it alive until the last
reference goes); the next request gets the new one. No lock is taken on the request path.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from services.common.models.errors import (
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    VersionNotFound,
)
from services.common.models.repository import ModelRepository
from services.common.models.runtime import OnnxModel, check_features

logger = logging.getLogger(__name__)


class CacheListener(Protocol):
    """Told about loads, so a service can count them without the cache knowing its metrics."""

    def loaded(self, model: OnnxModel, production: bool) -> None: ...

    def load_failed(self, name: str, version: int, error: ModelError) -> None: ...


class _Quiet:
    def loaded(self, model: OnnxModel, production: bool) -> None:
        pass

    def load_failed(self, name: str, version: int, error: ModelError) -> None:
        pass


class ModelCache:
    """Each model's production session, plus a few explicitly requested versions (LRU)."""

    def __init__(self, repository: ModelRepository, *,
                 expected_features: Mapping[str, Sequence[str]] | None = None,
                 watch_all: bool = False, max_other_versions: int = 4,
                 listener: CacheListener | None = None) -> None:
        """watch_all: also load models nobody has asked for yet (a server serves them all).
        expected_features: per model, the catalog's names; a version trained on others is
        refused (FeatureMismatch) and the current production version keeps serving."""
        self.repository = repository
        self.expected_features = dict(expected_features or {})
        self.watch_all = watch_all
        self.max_other_versions = max_other_versions
        self.listener: CacheListener = listener or _Quiet()
        self._production: dict[str, OnnxModel] = {}
        self._others: OrderedDict[tuple[str, int], OnnxModel] = OrderedDict()
        self._failed: dict[str, tuple[int, ModelError]] = {}
        self._refresh_lock = threading.Lock()
        self._others_lock = threading.Lock()

    # --- the request path: no locks, no disk unless a model was never loaded ---------------
    def production(self, name: str) -> OnnxModel:
        """The production model; loaded now if nobody asked for it before."""
        model = self._production.get(name)
        if model is not None:
            return model
        self._refresh_model(name)
        model = self._production.get(name)
        if model is None:
            failed = self._failed.get(name)
            raise failed[1] if failed else ModelUnavailable(f"{name} has no production version")
        return model

    def version(self, name: str, version: int) -> OnnxModel:
        """A specific version while it is on disk: the production one, or one loaded on demand."""
        current = self._production.get(name)
        if current is not None and current.version == version:
            return current  # the common case, asked on every request: no directory listing
        if version not in self.repository.versions(name):
            raise VersionNotFound(f"model {name!r} has no version {version}")
        if current is None and version == self.repository.production_version(name):
            current = self.production(name)  # load it as production, not as an extra copy
        if current is not None and current.version == version:
            return current
        key = (name, version)
        with self._others_lock:  # rare path: loading once beats two threads loading twice
            model = self._others.get(key)
            if model is None:
                model = self._load(name, version, production=False)
                self._others[key] = model
                while len(self._others) > self.max_other_versions:
                    self._others.popitem(last=False)
            self._others.move_to_end(key)
            return model

    def loaded(self) -> dict[str, int]:
        """Production version loaded per model."""
        return {name: model.version for name, model in self._production.items()}

    def is_ready(self, name: str | None = None) -> bool:
        """The model's production version is loaded; with no name, every watched model's."""
        if name is not None:
            return name in self._production
        try:
            return all(model in self._production for model in self._watched()
                       if self.repository.production_version(model) is not None)
        except ModelError:  # a model vanished between listing and reading: look again later
            return False

    # --- the watcher path ------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring every watched model to its production pointer. Safe to call from any thread."""
        for name in self._watched():
            try:
                self._refresh_model(name)
            except ModelNotFound:
                continue  # deleted between listing and reading; what is loaded keeps serving

    def _watched(self) -> list[str]:
        if self.watch_all:
            return self.repository.models()
        return list(self._production)

    def _refresh_model(self, name: str) -> None:
        with self._refresh_lock:
            wanted = self.repository.production_version(name)  # ModelNotFound propagates
            current = self._production.get(name)
            if wanted is None or (current is not None and current.version == wanted):
                return
            failed = self._failed.get(name)
            if failed is not None and failed[0] == wanted:
                return  # it failed once; versions are immutable, so it would fail again
            try:
                model = self._load(name, wanted, production=True)
            except ModelError as exc:
                self._failed[name] = (wanted, exc)
                self.listener.load_failed(name, wanted, exc)
                logger.error("could not load the production version; the previous one serves",
                             extra={"model": name, "version": wanted, "error": str(exc),
                                    "serving": current.version if current else None})
                return
            self._production[name] = model  # the swap: one reference, atomic for readers
            self._failed.pop(name, None)
            logger.info("production model swapped", extra={
                "model": name, "version": wanted, "previous": current.version if current else None,
                "load_ms": round(model.load_seconds * 1000, 1)})

    def _load(self, name: str, version: int, *, production: bool) -> OnnxModel:
        metadata = self.repository.metadata(name, version)
        expected = self.expected_features.get(name)
        if expected is not None:
            check_features(f"{name} v{version}", metadata.feature_names, expected)
        model = OnnxModel.load(self.repository.model_path(name, version), metadata)
        self.listener.loaded(model, production)
        return model


class RepositoryWatcher:
    """A daemon thread that calls `refresh` every `interval_s` until stopped."""

    def __init__(self, refresh: Callable[[], None], interval_s: float = 1.0) -> None:
        self._refresh = refresh
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling; a stopped watcher can start again (an app's lifespan can rerun)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._refresh()
            except Exception:  # a broken repository must not kill the watcher: log, retry
                logger.exception("model refresh failed")
