"""`make retrain-ranker` on real Parquet: logged impressions and clicks go through the real broker
into the lake sink's files, the ranker trains on them, and the gate against the production ranker
of a real model repository registers a better challenger and refuses one that is not.

The logged world: each impression lists 10 titles with their RANKER_FEATURES rows as served;
viewers click by a hidden rule of the features (taste: content score and genre match) and the
slot, and watch some clicked titles. One production ranker learnt a rule clicks do not follow
(trending), the other the clicks' own rule from many more rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from services.common.bus import topics
from services.common.bus.ports import OutboundMessage
from services.common.drift import DRIFT_REFERENCE_FILE
from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.trainer.export import export_classifier
from services.trainer.ranker_from_lake import (
    EMBEDDINGS_FILE,
    REPORT_FILE,
    NotEnoughData,
    fit_click_ranker,
    logged_rows,
    retrain_ranker,
)
from tests.harness import ServerProcess
from tests.lake_events import T0, message
from tests.support.lake import through_the_sink

pytestmark = pytest.mark.integration

IMPRESSIONS = 1_500
K = 10
N = len(RANKER_FEATURE_NAMES)
COLUMN = {name: j for j, name in enumerate(RANKER_FEATURE_NAMES)}
AS_OF = T0 + timedelta(days=1)


def features(rng: np.random.Generator, rows: int) -> npt.NDArray[np.float32]:
    x = rng.random((rows, N)).astype(np.float32)
    x[:, COLUMN["popularity"]] *= 8.0
    x[:, COLUMN["trending_score"]] *= 5.0
    return x


def click_probability(x: npt.NDArray[np.float32], slots: npt.NDArray[np.int64]
                      ) -> npt.NDArray[np.float64]:
    """The viewers' hidden rule: taste (content score, genre match) and the slot's position."""
    logit = -3.2 + 3.0 * x[:, COLUMN["content_score"]] + 2.0 * x[:, COLUMN["genre_match"]]
    p: npt.NDArray[np.float64] = (1 + slots) ** -0.5 / (1 + np.exp(-logit))
    return p


@dataclass
class LoggedWorld:
    root: Path
    clicks: int
    run: str


def logged_messages(run: str, rng: np.random.Generator) -> tuple[list[OutboundMessage], int]:
    messages, clicks = [], 0
    for i in range(IMPRESSIONS):
        user, request = f"{run}u{i % 300}", f"{run}r{i}"
        titles = [f"{run}t{(i * 7 + j) % 400}" for j in range(K)]
        x = features(rng, K)
        at = T0 + timedelta(seconds=10 * i)
        served = None if i % 50 == 0 else {   # a cached list without features now and then
            "names": list(RANKER_FEATURE_NAMES), "rows": x.astype(np.float64).tolist(),
            "computed_at": at.timestamp(), "request_id": request, "model_version": 1}
        messages.append(message(topics.REC_IMPRESSIONS, user, "impression", {
            "user_id": user, "content_ids": titles, "request_id": request,
            "experiment": "rec-algorithm", "variation": "treatment", "features": served,
            "shuffled": i % 5 == 1},
            at, f"impression:{request}"))
        clicked = np.flatnonzero(rng.random(K) < click_probability(x, np.arange(K)))
        for slot in clicked.tolist():
            clicks += served is not None
            messages.append(message(topics.REC_CLICKS, user, "click", {
                "user_id": user, "content_id": titles[slot], "position": slot,
                "request_id": request}, at + timedelta(seconds=2), f"{run}-click-{i}-{slot}"))
            if slot % 2 == 0:
                messages.append(message(topics.WATCH_EVENTS, user, "watch", {
                    "user_id": user, "content_id": titles[slot], "watch_seconds": 600,
                    "completed": True}, at + timedelta(seconds=5), f"{run}-watch-{i}-{slot}"))
    return messages, clicks


@pytest.fixture(scope="module")
def logged(kafka_server: ServerProcess,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedWorld]:
    run = f"r{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("lake") / "lake"
    messages, clicks = logged_messages(run, np.random.default_rng(7))
    through_the_sink(kafka_server, root, [messages], "the logged impressions in the lake")
    yield LoggedWorld(root, clicks, run)


def repository_with_production(path: Path, trained_on: str) -> ModelRepository:
    """A repository whose production ranker (v1, with its embeddings) learnt `trained_on`:
    "trending" (not what viewers click on) or "clicks" (their rule, 40,000 rows)."""
    rng = np.random.default_rng(11)
    x = features(rng, 40_000)
    if trained_on == "trending":
        label = x[:, COLUMN["trending_score"]] + rng.normal(0, 1, len(x)) > 2.5
    else:
        label = rng.random(len(x)) < click_probability(x, rng.integers(0, K, len(x)))
    estimator = fit_click_ranker(x, label.astype(np.int64), seed=0)
    repository = ModelRepository(path)
    repository.register("ranker", export_classifier(estimator, N),
                        feature_names=RANKER_FEATURE_NAMES, metrics={},
                        training_data_hash="test", description=f"production: {trained_on}",
                        extra_files={EMBEDDINGS_FILE: b"the production embeddings"})
    return repository


def test_the_lakes_rows_are_the_features_as_served_joined_to_their_clicks_and_watches(
        logged: LoggedWorld) -> None:
    with open_lake(logged.root) as con:
        rows = logged_rows(con, AS_OF)
        early = logged_rows(con, T0 + timedelta(seconds=10 * 600))

    with_features = IMPRESSIONS - IMPRESSIONS // 50
    assert rows["impression"].nunique() == with_features
    assert len(rows) == with_features * K
    assert int(rows["clicked"].sum()) == logged.clicks
    # watched: the user watched the title after this list showed it (from this list or a later)
    assert rows.loc[rows["clicked"], "watched"].mean() > 0.3 > rows.loc[~rows["clicked"],
                                                                        "watched"].mean()
    # point in time: an earlier instant sees only what had been served and clicked by then
    assert early["impression"].nunique() < rows["impression"].nunique()
    assert early["time_ms"].max() < (T0 + timedelta(seconds=10 * 600)).timestamp() * 1000
    # the rows are the logged float32 values: the click rule shows in them
    clicked = rows[rows["clicked"]]
    assert clicked["content_score"].mean() > rows["content_score"].mean() + 0.1


def test_a_ranker_that_beats_production_on_later_lists_is_registered_not_promoted(
        logged: LoggedWorld, tmp_path: Path) -> None:
    repository = repository_with_production(tmp_path / "models", "trending")

    report = retrain_ranker(logged.root, repository, AS_OF)

    assert report.registered and report.version == 2
    assert report.interval is not None and report.interval[0] > 0
    assert report.production is not None
    assert report.challenger.ips_clicked_rank < report.production.ips_clicked_rank
    assert report.position_bias_eta == pytest.approx(0.5, abs=0.15)   # the viewers' (1 + slot)^-0.5
    assert report.shuffled_impressions == IMPRESSIONS // 5   # every fifth list, all with features
    assert repository.production_version("ranker") == 1        # a candidate, not production
    metadata = repository.metadata("ranker", 2)
    assert metadata.metrics["ips_clicked_rank_gain_vs_production"] == pytest.approx(
        report.difference)
    assert {EMBEDDINGS_FILE, REPORT_FILE, DRIFT_REFERENCE_FILE} <= set(metadata.extra_files)
    assert repository.extra_file("ranker", 2, EMBEDDINGS_FILE).read_bytes() == \
        b"the production embeddings"
    assert report.held_out_impressions == report.impressions - report.train_impressions
    assert report.held_out_impressions == pytest.approx(0.2 * report.impressions, abs=1)


def test_a_ranker_no_better_than_production_is_refused_and_the_report_says_why(
        logged: LoggedWorld, tmp_path: Path) -> None:
    repository = repository_with_production(tmp_path / "models", "clicks")

    report = retrain_ranker(logged.root, repository, AS_OF)

    assert not report.registered and report.version is None
    assert repository.versions("ranker") == [1]
    assert "refused" in report.reason and "production v1" in report.reason
    assert report.interval is not None and report.interval[0] <= 0


def test_an_empty_lake_retrains_nothing_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(NotEnoughData, match="retraining needs"):
        retrain_ranker(tmp_path / "lake", ModelRepository(tmp_path / "models"), AS_OF)
