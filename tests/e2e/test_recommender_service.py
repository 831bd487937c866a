"""The recommender as a process with the model server, ingest and stream on real Redis and Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import EXPOSURES, REC_IMPRESSIONS, platform_topics
from services.trainer.feedback import read_topic
from tests.e2e.conftest import ServiceProcess
from tests.harness import ServerProcess, free_port

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]


def recommend(service: ServiceProcess, user: str, k: int = 10,
              cache_control: str | None = None) -> dict[str, Any]:
    headers = {} if cache_control is None else {"Cache-Control": cache_control}
    response = httpx.get(f"{service.url}/v1/recommendations/{user}", params={"k": k},
                         headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def watch(user: str, content: str) -> dict[str, Any]:
    return {"id": f"e2e-{uuid.uuid4().hex}", "type": "watch", "source": "e2e",
            "time": datetime.now(UTC).isoformat(),
            "data": {"user_id": user, "content_id": content, "watch_seconds": 1200,
                     "completed": True}}


def post(ingest: ServiceProcess, *events: dict[str, Any]) -> None:
    response = httpx.post(f"{ingest.url}/v1/events", json={"events": list(events)}, timeout=10)
    assert response.status_code == 202, response.text


@pytest.fixture
def topics(kafka_server: ServerProcess) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))


def test_a_watch_changes_the_next_response_within_a_second(
        start_service: StartService, topics: None) -> None:
    start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    ingest = start_service("ingest")
    models = start_service("modelserver")
    recommender = start_service("recommender", MLSD_MODEL_BACKEND="remote",
                                MLSD_MODEL_SERVER_URL=models.url)
    user = f"u{700 + int(uuid.uuid4().int % 90)}"
    post(ingest, *(watch(user, f"t{i}") for i in (1, 2, 3, 4, 5, 6)))
    deadline = time.monotonic() + 20
    while recommend(recommender, user)["watch_count"] < 6:
        assert time.monotonic() < deadline, "the stream never applied the first watches"
        time.sleep(0.1)
    first = recommend(recommender, user)
    assert first["served_from"] in {"computed", "cache"} and first["fallbacks"] == []
    assert recommend(recommender, user)["served_from"] == "cache"
    # A client may ask for the list computed now (the uncached load test does).
    assert recommend(recommender, user, cache_control="no-cache, no-store")["served_from"] == \
        "computed"
    top = first["items"][0]["content_id"]

    posted = time.monotonic()
    post(ingest, watch(user, top))
    while True:
        answer = recommend(recommender, user)
        if top not in {item["content_id"] for item in answer["items"]}:
            break
        assert time.monotonic() - posted < 10, "the watched title is still recommended"
        time.sleep(0.02)
    changed_after = time.monotonic() - posted
    assert answer["served_from"] == "computed" and answer["watch_count"] == 7
    assert changed_after < 1.0, f"the response changed {changed_after:.2f} s after the watch"


def test_every_answer_is_published_as_an_impression_with_its_request_id(
        start_service: StartService, kafka_server: ServerProcess, topics: None) -> None:
    recommender = start_service("recommender")
    answers = [recommend(recommender, f"u{n}", k=5) for n in (1, 2, 2)]
    wanted = {a["request_id"] for a in answers}
    deadline = time.monotonic() + 30
    found: dict[str, dict[str, Any]] = {}
    while not wanted <= found.keys() and time.monotonic() < deadline:
        time.sleep(0.5)
        for data in read_topic(kafka_server.address, REC_IMPRESSIONS):
            if data.get("request_id") in wanted:
                found[data["request_id"]] = data
    assert wanted <= found.keys()
    for answer in answers:
        impression = found[answer["request_id"]]
        assert impression["content_ids"] == [i["content_id"] for i in answer["items"]]
        assert impression["variation"] == answer["variant"]
    # The rec-algorithm experiment chose each variant, and logged each user's exposure once.
    assert {a["experiment"] for a in answers} == {"rec-algorithm"}
    exposures = [d for d in read_topic(kafka_server.address, EXPOSURES)
                 if d.get("unit_id") in {"u1", "u2"}]
    assert sorted((d["unit_id"], d["variation"]) for d in exposures) == [
        ("u1", answers[0]["variant"]), ("u2", answers[1]["variant"])]


def test_without_redis_the_answer_is_the_popular_snapshot_flagged_not_an_error(
        start_service: StartService) -> None:
    recommender = start_service("recommender", MLSD_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    for user in ("u1", "u2", "u99999"):
        answer = recommend(recommender, user, k=5)
        assert answer["served_from"] == "fallback" and answer["fallbacks"] == ["feature_store"]
        assert len(answer["items"]) == 5
        assert {i["recommendation_type"] for i in answer["items"]} == {"popular"}


def test_without_the_model_server_the_blend_answers_flagged(
        start_service: StartService, topics: None) -> None:
    # No experiment: everyone gets the default (treatment, the ranker), whose model is missing.
    recommender = start_service("recommender", MLSD_MODEL_BACKEND="remote",
                                MLSD_RECOMMENDER_EXPERIMENT="",
                                MLSD_MODEL_SERVER_URL=f"http://127.0.0.1:{free_port()}")
    ingest = start_service("ingest")
    stream = start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    assert stream.process.poll() is None
    user = "u650"
    post(ingest, *(watch(user, f"t{i}") for i in (10, 11, 12, 13, 14, 15)))
    deadline = time.monotonic() + 20
    while (answer := recommend(recommender, user))["watch_count"] < 6:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert answer["served_from"] == "fallback" and answer["fallbacks"] == ["model"]
    assert answer["variant"] == "treatment" and len(answer["items"]) == 10


def test_bad_input_is_a_422_that_names_the_problem(start_service: StartService) -> None:
    recommender = start_service("recommender")
    for path in ("/v1/recommendations/u1?k=0", "/v1/recommendations/u1?k=101",
                 "/v1/recommendations/u1?k=ten", "/v1/recommendations/user%091",
                 "/v1/recommendations/u1%00x", f"/v1/recommendations/{'x' * 129}"):
        response = httpx.get(f"{recommender.url}{path}", timeout=10)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"]
