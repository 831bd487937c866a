"""The catalog pipeline as real processes: a CSV through the job, Kafka, the stream, Redis and
into the running recommender's lists, without a restart; and the brief's example end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.models import ModelRepository
from services.designs.recs.artifacts import load_item_artifacts
from tests.e2e.conftest import ServiceProcess
from tests.harness import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]
TODAY = datetime.now(UTC).date()
HEADER = "content_id,title,genres,actors,maturity_rating,release_date,rating,thumbnail_url\n"
# The brief's two titles: one released today (a new release), one two years ago.
BRIEF_CATALOG = HEADER + (
    f"movie_456,Action Comedy Adventure,Action|Comedy,Ann Lee|Bo Park,PG-13,{TODAY},4.2,"
    "https://img.example/movie_456.png\n"
    f"movie_789,Drama Romance,Drama|Romance,Cy Dunn,PG-13,{TODAY - timedelta(days=730)},3.8,\n"
    "movie_bad,,Drama,,PG,not-a-date,9,\n")


def recommend(service: ServiceProcess, user: str, k: int = 10) -> dict[str, Any]:
    response = httpx.get(f"{service.url}/v1/recommendations/{user}", params={"k": k}, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def load_catalog(path: Path, kafka: ServerProcess,
                 postgres: ServerProcess) -> subprocess.CompletedProcess[str]:
    """`make catalog FILE=path`, as the Makefile runs it: into PostgreSQL, then to Kafka."""
    return subprocess.run([sys.executable, "-m", "services.catalog_etl", str(path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                               "MLSD_POSTGRES_PORT": postgres.extra["port"]})


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def stack(start_service: StartService, kafka_server: ServerProcess
          ) -> tuple[ServiceProcess, ServiceProcess]:
    ensure_topics(kafka_server.address, platform_topics(3))
    start_service("stream", MLSD_STREAM_CONCERNS="watch-features,catalog-titles")
    recommender = start_service("recommender", MLSD_RECOMMENDER_STATS_REFRESH_S="0.5")
    return recommender, start_service("ingest")


def new_release_served(recommender: ServiceProcess) -> bool:
    """Whether the recommender's catalog has movie_456 yet (each worker process merges the
    catalog on its own refresh thread, so five answers in a row must have it): a fresh cold
    user each time, since a cold list is cached per user like any other."""
    return all(any(item["content_id"] == "movie_456"
                   for item in recommend(recommender, f"cold-{uuid.uuid4().hex}")["items"])
               for _ in range(5))


def test_a_title_loaded_from_a_csv_is_recommended_to_a_cold_user_without_a_restart(
        stack: tuple[ServiceProcess, ServiceProcess], kafka_server: ServerProcess,
        postgres_server: ServerProcess, redis_client: redis.Redis, tmp_path: Path) -> None:
    recommender, _ = stack
    before = recommend(recommender, f"cold-{uuid.uuid4().hex}")
    assert "movie_456" not in {item["content_id"] for item in before["items"]}

    path = tmp_path / "titles.csv"
    path.write_text(BRIEF_CATALOG)
    loaded = load_catalog(path, kafka_server, postgres_server)
    assert loaded.returncode == 1, loaded.stderr                        # one bad row
    assert f"{path}:4: " in loaded.stderr and "2 titles recorded and published" in loaded.stdout
    wait_for(lambda: redis_client.hlen("fs:catalog_titles:{global}") == 2, 20,
             "the stream to write both titles")

    wait_for(lambda: new_release_served(recommender), 10,
             "the recommender to serve the new title")
    answer = recommend(recommender, f"cold-{uuid.uuid4().hex}")
    [item] = [i for i in answer["items"] if i["content_id"] == "movie_456"]
    assert answer["personalization"] == "cold"
    assert item["title"] == "Action Comedy Adventure" and item["genres"] == ["Action", "Comedy"]
    assert item["recommendation_type"] == "new_release"


def test_the_briefs_example_user_123_gets_explained_recommendations(
        stack: tuple[ServiceProcess, ServiceProcess], kafka_server: ServerProcess,
        postgres_server: ServerProcess, redis_client: redis.Redis, model_repository: Path,
        tmp_path: Path) -> None:
    recommender, ingest = stack
    path = tmp_path / "titles.csv"
    path.write_text(BRIEF_CATALOG)
    assert load_catalog(path, kafka_server, postgres_server).returncode == 1
    wait_for(lambda: redis_client.hlen("fs:catalog_titles:{global}") == 2, 20, "the titles")
    wait_for(lambda: new_release_served(recommender), 10, "the recommender to merge them")

    # user_123 likes action and comedy: three Action-Comedy titles of the trained catalog.
    items = load_item_artifacts(ModelRepository(model_repository))
    action, comedy = items.genre_names.index("Action"), items.genre_names.index("Comedy")
    liked = [items.title_ids[row] for row in
             np.flatnonzero(items.genres[:, action] * items.genres[:, comedy])[:3]]
    now = datetime.now(UTC).isoformat()
    events = [{"id": f"e2e-{uuid.uuid4().hex}", "type": "watch", "source": "e2e", "time": now,
               "data": {"user_id": "user_123", "content_id": title, "watch_seconds": 5400,
                        "completed": True}} for title in liked]
    response = httpx.post(f"{ingest.url}/v1/events", json={"events": events}, timeout=10)
    assert response.status_code == 202, response.text
    wait_for(lambda: recommend(recommender, "user_123")["watch_count"] == len(liked), 20,
             "user_123's watches")

    answer = recommend(recommender, "user_123", k=100)
    assert answer["personalization"] == "light" and answer["fallbacks"] == []
    assert all(item["explanation"] and item["recommendation_type"] for item in answer["items"])
    order = [item["content_id"] for item in answer["items"]]
    assert not set(liked) & set(order)                                  # watched: filtered
    assert "movie_456" in order                                         # action and comedy
    [item] = [i for i in answer["items"] if i["content_id"] == "movie_456"]
    assert item["title"] == "Action Comedy Adventure"
    assert item["recommendation_type"] == "similar_to_watched"
    assert item["explanation"].startswith("Because you watched ")
    assert "movie_789" not in order or order.index("movie_789") > order.index("movie_456")
