"""The bare-endpoint floor (load-tests/floor.py): its answers keep the services' contracts."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from services.fraud.schemas import ScoreResponse
from services.recommender.schemas import RecommendationsResponse
from tests.load_tests_modules import load

floor = load("floor")
viewers = load("viewers")


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(floor.create_app())


def test_a_score_answers_a_typical_approval_in_the_fraud_services_schema(
        client: TestClient) -> None:
    response = client.post("/v1/score", json={"transaction_id": "lt-1", "amount": 12.5})
    assert response.status_code == 200
    answer = ScoreResponse.model_validate_json(response.content)
    assert (answer.action, len(answer.reasons)) == ("approve", 4)
    assert 700 < len(response.content) < 1_200


@pytest.mark.parametrize("user_id", ["u42", "u9000001", "a/b c%ü", "x|{y}:z"])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_recommendations_are_k_titles_for_the_user_asked_about(client: TestClient, user_id: str,
                                                               k: int) -> None:
    response = client.get(f"/v1/recommendations/{quote(user_id, safe='')}", params={"k": k})
    assert response.status_code == 200
    answer = RecommendationsResponse.model_validate_json(response.content)
    assert (answer.user_id, len(answer.items)) == (user_id, k)
    request = viewers.RecsRequest(viewers.TAIL, user_id, k)
    assert viewers.served_from(response.json(), request) == "cache"


def test_a_client_asking_for_no_cache_is_told_the_list_was_computed(client: TestClient) -> None:
    response = client.get("/v1/recommendations/u1", headers={"Cache-Control": "no-cache"})
    assert response.json()["served_from"] == "computed"
    assert client.get("/v1/recommendations/u1").json()["served_from"] == "cache"


def test_ten_titles_are_about_two_kilobytes_as_the_recommender_answers(
        client: TestClient) -> None:
    assert 1_500 < len(client.get("/v1/recommendations/u1").content) < 2_500


@pytest.mark.parametrize("k", [0, 101])
def test_k_outside_what_the_recommender_accepts_is_refused(client: TestClient, k: int) -> None:
    assert client.get("/v1/recommendations/u1", params={"k": k}).status_code == 422


def test_behind_the_platforms_shell_the_floor_answers_the_same_and_counts_each_request() -> None:
    with TestClient(floor.create_app(platform=True)) as platform:
        plain = TestClient(floor.create_app())
        assert platform.post("/v1/score", json={}).content == plain.post("/v1/score",
                                                                         json={}).content
        assert platform.get("/v1/recommendations/u1").content == plain.get(
            "/v1/recommendations/u1").content
        metrics = platform.get("/metrics").text
    assert 'floor_http_request_duration_seconds_count{method="POST",route="/v1/score"' in metrics
