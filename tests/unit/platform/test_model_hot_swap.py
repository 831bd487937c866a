"""Hot swap: a promoted version is loaded fully, then swapped in; no request fails meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from services.common.models import (
    FeatureMismatch,
    ModelCache,
    ModelError,
    ModelNotFound,
    ModelRepository,
    ModelUnavailable,
    OnnxModel,
    RepositoryWatcher,
    VersionNotFound,
)
from services.common.models.testing import logistic_model

FEATURES = ("a", "b")
ROWS = np.ones((4, 2), dtype=np.float32)


class Recorder:
    def __init__(self) -> None:
        self.loads: list[tuple[str, int, bool]] = []
        self.failures: list[tuple[str, int]] = []

    def loaded(self, model: OnnxModel, production: bool) -> None:
        self.loads.append((model.name, model.version, production))

    def load_failed(self, name: str, version: int, error: ModelError) -> None:
        self.failures.append((name, version))


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path)
    for bias in (-5.0, 5.0, 0.0):  # v1 says 0, v2 says 1, v3 says 0.5: easy to tell apart
        repository.register("fraud", logistic_model([0.0, 0.0], bias), feature_names=FEATURES,
                            metrics={}, training_data_hash="h", description=f"bias {bias}")
    return repository


def test_the_production_model_is_loaded_on_first_use(repository: ModelRepository) -> None:
    recorder = Recorder()
    cache = ModelCache(repository, listener=recorder)
    assert cache.loaded() == {}
    assert cache.production("fraud").version == 1
    assert recorder.loads == [("fraud", 1, True)]


def test_an_unknown_model_is_not_found(repository: ModelRepository) -> None:
    with pytest.raises(ModelNotFound):
        ModelCache(repository).production("ranker")


def test_refresh_swaps_in_the_promoted_version(repository: ModelRepository) -> None:
    cache = ModelCache(repository)
    old = cache.production("fraud")
    repository.promote("fraud", 2)
    assert cache.production("fraud") is old  # nothing changes until the pointer is read

    cache.refresh()

    assert cache.production("fraud").version == 2
    assert cache.production("fraud").predict(ROWS)["label"].tolist() == [1, 1, 1, 1]
    assert old.predict(ROWS)["label"].tolist() == [0, 0, 0, 0]  # in-flight holders still work


def test_requests_running_through_a_swap_all_succeed_and_then_see_the_new_version(
        repository: ModelRepository) -> None:
    cache = ModelCache(repository)
    cache.production("fraud")
    seen: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def predict_until_stopped() -> None:
        while not stop.is_set():
            try:
                model = cache.production("fraud")
                labels = model.predict(ROWS)["label"]
                assert labels.tolist() == ([1] * 4 if model.version == 2 else [0] * 4)
                seen.append(model.version)
            except Exception as exc:  # the test's point: nothing may fail
                errors.append(exc)

    workers = [threading.Thread(target=predict_until_stopped) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    repository.promote("fraud", 2)
    cache.refresh()
    time.sleep(0.1)
    stop.set()
    for worker in workers:
        worker.join()

    assert errors == []
    assert seen[0] == 1 and seen[-1] == 2
    assert seen.index(2) > 0 and set(seen[seen.index(2):]) <= {1, 2}


def test_a_version_that_fails_to_load_leaves_the_previous_one_serving(
        repository: ModelRepository) -> None:
    recorder = Recorder()
    cache = ModelCache(repository, listener=recorder)
    cache.production("fraud")
    repository.model_path("fraud", 2).write_bytes(b"corrupted on disk")
    repository.promote("fraud", 2)

    cache.refresh()
    cache.refresh()  # a version that failed is not retried: versions never change

    assert cache.production("fraud").version == 1
    assert recorder.failures == [("fraud", 2)]
    assert cache.is_ready("fraud")


def test_a_production_version_that_never_loaded_makes_the_model_unavailable(
        repository: ModelRepository) -> None:
    repository.model_path("fraud", 1).write_bytes(b"corrupted on disk")
    cache = ModelCache(repository, watch_all=True)
    cache.refresh()
    with pytest.raises(ModelUnavailable, match="cannot load fraud v1"):
        cache.production("fraud")
    assert not cache.is_ready()


def test_a_version_trained_on_other_features_is_refused_and_the_previous_one_serves(
        repository: ModelRepository) -> None:
    repository.register("fraud", logistic_model([0.0, 0.0]), feature_names=("b", "a"),
                        metrics={}, training_data_hash="h", description="swapped columns")
    cache = ModelCache(repository, expected_features={"fraud": FEATURES})
    cache.production("fraud")
    repository.promote("fraud", 4)

    cache.refresh()

    assert cache.production("fraud").version == 1


def test_a_first_version_trained_on_other_features_is_a_feature_mismatch(
        repository: ModelRepository) -> None:
    cache = ModelCache(repository, expected_features={"fraud": ("x", "y")})
    with pytest.raises(FeatureMismatch):
        cache.production("fraud")


def test_explicit_versions_are_served_beside_production_and_evicted_least_recent_first(
        repository: ModelRepository) -> None:
    recorder = Recorder()
    cache = ModelCache(repository, max_other_versions=1, listener=recorder)
    assert cache.version("fraud", 1) is cache.production("fraud")
    assert cache.version("fraud", 2).version == 2
    assert cache.version("fraud", 3).version == 3  # evicts v2
    cache.version("fraud", 2)
    assert [load[1] for load in recorder.loads] == [1, 2, 3, 2]
    with pytest.raises(VersionNotFound):
        cache.version("fraud", 9)


def test_every_model_is_ready_only_when_its_production_version_is_loaded(
        repository: ModelRepository) -> None:
    cache = ModelCache(repository, watch_all=True)
    assert not cache.is_ready()
    cache.refresh()
    assert cache.is_ready()
    assert cache.loaded() == {"fraud": 1}


def test_the_watcher_picks_up_a_promotion_within_its_interval(
        repository: ModelRepository) -> None:
    cache = ModelCache(repository, watch_all=True)
    cache.refresh()
    watcher = RepositoryWatcher(cache.refresh, interval_s=0.05)
    watcher.start()
    try:
        repository.promote("fraud", 3)
        deadline = time.monotonic() + 5
        while cache.loaded()["fraud"] != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watcher.stop()
    assert cache.loaded() == {"fraud": 3}


def test_the_watcher_survives_a_refresh_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")

    watcher = RepositoryWatcher(flaky, interval_s=0.01)
    watcher.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.stop()
    assert len(calls) >= 3
    assert "model refresh failed" in caplog.text
