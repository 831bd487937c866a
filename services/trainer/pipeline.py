"""`make models`: generate both worlds, train, export to ONNX, check parity, register, promote.

MLSD_DATASET=movielens trains the recommender on MovieLens 100k instead of the synthetic viewing
world (the fraud models always train on the synthetic transaction world: MovieLens has no cards).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from services.common.models import ModelRepository
from services.common.models.settings import ModelSettings
from services.common.settings import Dataset
from services.designs.model_features import LAKE_DAYS_FOR_A_RETRAIN
from services.trainer.artifacts import TrainedModel
from services.trainer.export import check_parity, export_classifier
from services.trainer.fraud import train_fraud
from services.trainer.recs import OFFLINE_LISTS_FILE, train_recommendations
from services.trainer.worlds import WatchWorld, movielens, transactions, viewing

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
PRODUCTION_MODELS = ("fraud", "ranker")


class TrainerSettings(ModelSettings):
    """Where worlds and reports go: MLSD_WORLD_DIR, MLSD_REPORT_DIR (models: ModelSettings);
    what the recommender learns from: MLSD_DATASET."""

    world_dir: Path = Field(Path(".state/worlds"))
    report_dir: Path = Field(Path("reports/models"))
    dataset: Dataset = Field(
        "synthetic", description="the recommender's data: the synthetic viewing world, or "
                                 "MovieLens 100k from the recbole wheel")


@dataclass(frozen=True)
class Scale:
    """World sizes: `default` is the world the demo, seeding and docs use; `small` is for tests."""

    transactions: transactions.TransactionWorldConfig
    viewing: viewing.ViewingConfig


# The dev stack's transaction world is longer than the offline evaluation's 58 days
# (docs/evaluation/fraud.md: the handbook's warm-up and weeks) by 8 days of warm-up in front, the
# same weeks after: the seeder replays all of it, so the lake holds what `make retrain-fraud`
# needs today (its burn-in and its four weeks, LAKE_DAYS_FOR_A_RETRAIN).
DEV_WORLD_DAYS = LAKE_DAYS_FOR_A_RETRAIN
SCALES = {
    "default": Scale(transactions.TransactionWorldConfig.ending_on_handbook_calendar(
        DEV_WORLD_DAYS), viewing.ViewingConfig()),
    "small": Scale(
        transactions.TransactionWorldConfig.ending_on_handbook_calendar(
            DEV_WORLD_DAYS, n_customers=600, n_terminals=1_200),
        viewing.ViewingConfig(n_users=800, n_titles=400),
    ),
}


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    previous_production: int | None
    parity_max_abs_diff: float
    metrics: dict[str, float]


@dataclass
class PipelineResult:
    registered: list[Registered] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def register(repository: ModelRepository, trained: TrainedModel) -> Registered:
    """Export, refuse on parity failure, register an immutable version and make it production."""
    onnx_bytes = export_classifier(trained.estimator, n_features=len(trained.feature_names))
    difference = check_parity(trained.estimator, onnx_bytes, trained.holdout)
    previous = (repository.production_version(trained.name)
                if trained.name in repository.models() else None)
    version = repository.register(
        trained.name, onnx_bytes,
        feature_names=trained.feature_names,
        metrics=trained.metrics | {"onnx_parity_max_abs_diff": difference},
        training_data_hash=trained.training_data_hash,
        description=trained.description,
        extra_files=trained.extra_files,
        actor="trainer",
    )
    if repository.production_version(trained.name) != version:
        repository.promote(trained.name, version, actor="trainer")
    return Registered(trained.name, version, previous, difference, dict(trained.metrics))


def missing_models(repository: ModelRepository, dataset: Dataset = "synthetic") -> list[str]:
    """Production models absent, or (the ranker) trained on another dataset than `dataset`."""
    present = set(repository.models()) if repository.root.exists() else set()
    missing = [name for name in PRODUCTION_MODELS
               if name not in present or repository.production_version(name) is None]
    if "ranker" not in missing and ranker_dataset(repository) != dataset:
        missing.append("ranker")
    return missing


def ranker_dataset(repository: ModelRepository) -> str:
    """The dataset the production ranker learned from (its offline lists say); a ranker
    registered before they were kept was trained on the synthetic world."""
    version = repository.production_version("ranker")
    assert version is not None
    try:
        path = repository.extra_file("ranker", version, OFFLINE_LISTS_FILE)
    except FileNotFoundError:
        return "synthetic"
    dataset: str = json.loads(path.read_text())["dataset"]
    return dataset


def run_pipeline(settings: TrainerSettings, scale: Scale, say: Progress) -> PipelineResult:
    result = PipelineResult()
    repository = ModelRepository(settings.model_repository)

    def timed(step: str, started: float) -> float:
        result.seconds[step] = time.perf_counter() - started
        return result.seconds[step]

    started = time.perf_counter()
    say("fraud: generating the transaction world")
    tx_world = transactions.generate_transactions(scale.transactions)
    transactions.save(tx_world, settings.world_dir / "transactions")
    generated = timed("transaction world", started)
    say(f"fraud: {len(tx_world.transactions):,} transactions in {generated:.1f} s")

    started = time.perf_counter()
    fraud = train_fraud(tx_world, settings.report_dir, progress=say, generation_seconds=generated)
    result.registered.append(register(repository, fraud.model))
    timed("fraud training and evaluation", started)

    started = time.perf_counter()
    view_world, step = _viewing_world(settings, scale, say)
    generated = timed(step, started)
    say(f"recommendations: {len(view_world.interactions):,} watches in {generated:.1f} s")

    started = time.perf_counter()
    recs = train_recommendations(view_world, settings.report_dir, progress=say,
                                 timings={step: generated})
    result.registered.append(register(repository, recs.ranker))
    timed("recommendation training and evaluation", started)
    return result


def _viewing_world(settings: TrainerSettings, scale: Scale, say: Progress
                   ) -> tuple[WatchWorld, str]:
    """The recommender's world and the name of the step that made it; saved under world_dir."""
    if settings.dataset == "movielens":
        say("recommendations: loading MovieLens 100k from the recbole wheel")
        ml_world = movielens.load_movielens()
        movielens.save(ml_world, settings.world_dir / "movielens")
        return ml_world, "MovieLens 100k"
    say("recommendations: generating the viewing world")
    view_world = viewing.generate_viewing(scale.viewing)
    viewing.save(view_world, settings.world_dir / "viewing")
    return view_world, "viewing world"
