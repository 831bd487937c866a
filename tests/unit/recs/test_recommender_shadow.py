"""Shadow ranking: sampled, off the answer's path, never shown, measured against production."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.common.models import Prediction
from services.common.models.errors import ModelUnavailable
from services.common.telemetry import Metrics
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.recommender.app import shadow_ranker
from services.recommender.settings import RecommenderSettings
from services.recommender.shadow import (
    ShadowJob,
    ShadowMetrics,
    ShadowRanker,
    sampled,
    top_k_overlap,
)
from tests import recommender_world as world
from tests.support.recs import FakeModel, Rig


class TwoVersionModel(FakeModel):
    """Version 2, the candidate, ranks the opposite way to production: p = sigmoid(-4 cf)."""

    def __init__(self) -> None:
        super().__init__()
        self.shadow_threads: list[str] = []
        self.candidate_down = False

    def predict(self, model_name: str, rows: Any, *, version: int | None = None) -> Prediction:
        if version != 2:
            return super().predict(model_name, rows, version=version)
        self.shadow_threads.append(threading.current_thread().name)
        if self.candidate_down:
            raise ModelUnavailable("candidate did not answer")
        p1 = 1 / (1 + np.exp(4.0 * rows[:, 0]))
        return Prediction(model_name, 2, {"probabilities": np.column_stack([1 - p1, p1])})


def shadowed(tmp_path: Path, variant: str = "treatment", share: float = 1.0,
             capacity: int = 100) -> tuple[Rig, ShadowRanker, TwoVersionModel]:
    rig = Rig(tmp_path, variant)
    model = TwoVersionModel()
    shadow = ShadowRanker(model=model, model_name="ranker", version=2, share=share,
                          metrics=ShadowMetrics(rig.registry), capacity=capacity)
    rig.model = model
    rig.service._model = model
    rig.service._shadow = shadow
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    return rig, shadow, model


def test_sampling_is_a_stable_share_of_request_ids() -> None:
    ids = [f"request-{i}" for i in range(4000)]
    chosen = [i for i in ids if sampled(i, 0.25)]
    assert 0.22 < len(chosen) / len(ids) < 0.28
    assert chosen == [i for i in ids if sampled(i, 0.25)]    # the same requests every time
    assert all(sampled(i, 1.0) for i in ids[:100])


def test_top_k_overlap_counts_the_shared_top_titles() -> None:
    production = np.array([0.9, 0.8, 0.7, 0.1, 0.0])
    assert top_k_overlap(production, production * 2, 3) == 1.0
    assert top_k_overlap(production, -production, 2) == 0.0
    assert top_k_overlap(production, np.array([0.9, 0.0, 0.7, 0.8, 0.1]), 3) == pytest.approx(2 / 3)
    assert top_k_overlap(production[:2], production[:2], 10) == 1.0    # fewer candidates than k


def test_the_shadow_scores_off_the_path_and_the_answer_stays_productions(tmp_path: Path) -> None:
    plain = Rig(tmp_path / "plain")
    plain.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    rig, shadow, model = shadowed(tmp_path / "shadowed")
    answer = rig.service.recommend("u1", 5)
    shadow.drain()
    assert [i.content_id for i in answer.items] == \
        [i.content_id for i in plain.service.recommend("u1", 5).items]   # never shown
    assert model.shadow_threads == ["shadow-ranker"]                     # not the request's
    assert rig.count("shadow_requests_total", outcome="scored") == 1
    # the candidate ranks the other way round: its top 5 shares nothing with production's
    assert rig.count("shadow_top_k_overlap_ratio_count", version="2") == 1
    assert rig.count("shadow_top_k_overlap_ratio_sum", version="2") < 0.5
    assert rig.count("shadow_duration_seconds_count", version="2") == 1
    shadow.close()


def test_the_control_builds_the_shadows_features_off_the_path(tmp_path: Path) -> None:
    rig, shadow, model = shadowed(tmp_path, variant="control")
    rig.service.recommend("u1", 5)
    shadow.drain()
    assert model.calls == []                                  # production never called a model
    assert model.shadow_threads == ["shadow-ranker"]          # the candidate did, off the path
    assert rig.count("shadow_requests_total", outcome="scored") == 1
    shadow.close()


def test_a_failing_candidate_is_counted_and_the_answer_is_unharmed(tmp_path: Path) -> None:
    rig, shadow, model = shadowed(tmp_path)
    model.candidate_down = True
    answer = rig.service.recommend("u1", 5)
    shadow.drain()
    assert answer.fallbacks == [] and answer.served_from == "computed" and answer.items
    assert rig.count("shadow_requests_total", outcome="failed") == 1
    assert rig.count("shadow_requests_total", outcome="scored") == 0
    shadow.close()


def test_a_full_shadow_queue_drops_the_job_and_never_waits(tmp_path: Path) -> None:
    registry = Metrics("shadow_test")
    gate = threading.Event()

    class Slow(TwoVersionModel):
        def predict(self, model_name: str, rows: Any, *,
                    version: int | None = None) -> Prediction:
            gate.wait(5)
            return super().predict(model_name, rows, version=version)

    shadow = ShadowRanker(model=Slow(), model_name="ranker", version=2, share=1.0,
                          metrics=ShadowMetrics(registry), capacity=1)
    rows = np.zeros((3, len(RANKER_FEATURE_NAMES)), dtype=np.float32)
    job = ShadowJob("r", lambda: rows, np.array([0.3, 0.2, 0.1]), lambda: ["a", "b", "c"], 2)
    offered = [shadow.offer(job) for _ in range(5)]   # one taken by the thread, one queued
    assert offered.count(False) >= 3
    gate.set()
    shadow.drain()
    dropped = registry.registry.get_sample_value("shadow_test_shadow_requests_total",
                                                 {"outcome": "dropped"})
    assert dropped == offered.count(False)
    shadow.close()


def test_a_shadow_version_the_registry_does_not_hold_is_refused_at_start(
        tmp_path: Path) -> None:
    world.repository(tmp_path)
    settings = RecommenderSettings(model_repository=tmp_path, recommender_shadow_version=9)
    with pytest.raises(ValueError, match="MLSD_RECOMMENDER_SHADOW_VERSION=9"):
        shadow_ranker(settings, FakeModel(), ShadowMetrics(Metrics("refused")))
    registered = RecommenderSettings(model_repository=tmp_path, recommender_shadow_version=1)
    shadow = shadow_ranker(registered, FakeModel(), ShadowMetrics(Metrics("accepted")))
    assert shadow is not None and shadow.version == 1
    shadow.close()
    assert shadow_ranker(RecommenderSettings(model_repository=tmp_path), FakeModel(),
                         ShadowMetrics(Metrics("none"))) is None
