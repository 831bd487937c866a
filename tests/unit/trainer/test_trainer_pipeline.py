"""`make models` on a small world: both models trained, exported, parity-checked, registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.common.models import LocalModelClient, ModelRepository
from services.designs.model_features import FRAUD_FEATURE_NAMES, RANKER_FEATURE_NAMES
from services.trainer.pipeline import (
    SCALES,
    PipelineResult,
    TrainerSettings,
    missing_models,
    run_pipeline,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainerSettings, PipelineResult]:
    root = Path(tmp_path_factory.mktemp("models"))
    settings = TrainerSettings(model_repository=root / "repo", world_dir=root / "worlds",
                               report_dir=root / "reports")
    return settings, run_pipeline(settings, SCALES["small"], lambda _: None)


def test_both_production_models_are_registered_and_promoted(
        trained: tuple[TrainerSettings, PipelineResult]) -> None:
    settings, result = trained
    repository = ModelRepository(settings.model_repository)
    assert [(r.name, r.version) for r in result.registered] == [("fraud", 1), ("ranker", 1)]
    assert missing_models(repository) == []
    # trained on the synthetic world: a MovieLens demo must retrain the ranker
    assert missing_models(repository, "movielens") == ["ranker"]
    assert repository.production_version("fraud") == 1
    assert (settings.model_repository / "fraud" / "config.pbtxt").exists()
    assert (settings.model_repository / "fraud" / "1" / "model.onnx").exists()


def test_onnx_matches_scikit_learn_on_at_least_1000_held_out_rows(
        trained: tuple[TrainerSettings, PipelineResult]) -> None:
    _, result = trained
    for registered in result.registered:
        assert registered.parity_max_abs_diff <= 1e-4, registered.name


def test_models_record_the_catalogs_feature_names_in_order(
        trained: tuple[TrainerSettings, PipelineResult]) -> None:
    settings, _ = trained
    repository = ModelRepository(settings.model_repository)
    assert tuple(repository.metadata("fraud", 1).feature_names) == FRAUD_FEATURE_NAMES
    assert tuple(repository.metadata("ranker", 1).feature_names) == RANKER_FEATURE_NAMES


def test_a_registered_model_serves_probabilities_through_the_client(
        trained: tuple[TrainerSettings, PipelineResult]) -> None:
    settings, _ = trained
    client = LocalModelClient(ModelRepository(settings.model_repository),
                              expected_features={"fraud": FRAUD_FEATURE_NAMES})
    rows = np.zeros((3, len(FRAUD_FEATURE_NAMES)), dtype=np.float32)
    prediction = client.predict("fraud", rows)
    client.close()
    probabilities = prediction.outputs["probabilities"]
    assert probabilities.shape == (3, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_worlds_and_reports_are_written(trained: tuple[TrainerSettings, PipelineResult]) -> None:
    settings, _ = trained
    assert (settings.world_dir / "transactions").is_dir()
    assert (settings.world_dir / "viewing").is_dir()
    assert (settings.report_dir / "fraud.md").exists()
    assert (settings.report_dir / "recommendations.md").exists()
