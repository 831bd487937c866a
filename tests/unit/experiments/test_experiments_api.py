"""The experiments API on fakes: definitions and the admin token, assignments with exposures,
results and their plot, and 4xx bodies that say what is wrong (never a 5xx for bad input)."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.common.bus.envelope import Event, decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.topics import EXPOSURES
from services.designs.experiments.hashing import gb_hash
from services.designs.experiments.store import InMemoryDefinitionStore
from services.designs.experiments.tallies import Timeline, VariationCounts
from services.experiments.app import create_app
from services.experiments.settings import DEV_ADMIN_TOKEN, ExperimentsSettings
from tests.harness import REPO_ROOT
from tests.support.experiments_fakes import FakeCounts, FakeHistory, FakeRedis, definition

TOKEN = "a-test-admin-token-of-some-length"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def settings(**changes: Any) -> ExperimentsSettings:
    return ExperimentsSettings(
        environment="test", experiments_admin_token=TOKEN,
        experiments_file=REPO_ROOT / "config" / "experiments" / "experiments.toml",
        experiments_refresh_interval_s=60, **changes)


@dataclass
class Api:
    client: TestClient
    store: InMemoryDefinitionStore
    counts: FakeCounts
    redis: FakeRedis
    broker: InMemoryBroker
    history: FakeHistory

    def get(self, path: str, **params: Any) -> httpx.Response:
        response: httpx.Response = self.client.get(path, params=params)
        return response

    def put(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        response: httpx.Response = self.client.put(path, json=body,
                                                   headers=ADMIN if headers is None else headers)
        return response

    def exposures(self, count: int, timeout_s: float = 2.0) -> list[Event]:
        """The exposure events published, once `count` are there (they are sent off-thread)."""
        deadline = time.monotonic() + timeout_s
        while len(self.broker.records(EXPOSURES)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return [decode_event(r.value) for r in self.broker.records(EXPOSURES)]


@pytest.fixture
def api() -> Iterator[Api]:
    store, counts, redis, broker, history = (InMemoryDefinitionStore(), FakeCounts(),
                                             FakeRedis(), InMemoryBroker(), FakeHistory())
    app = create_app(settings(), redis_client=cast(Any, redis), store=store, counts=counts,
                     publisher=InMemoryPublisher(broker), history=history)
    with TestClient(app) as client:
        yield Api(client, store, counts, redis, broker, history)




# --- definitions ------------------------------------------------------------------------------
def test_the_file_is_seeded_and_listed_with_every_field(api: Api) -> None:
    listed = api.get("/v1/experiments").json()["experiments"]

    assert [e["key"] for e in listed] == ["rec-algorithm", "row-titles"]
    assert listed[0] == {
        "key": "rec-algorithm", "status": "running", "seed": "rec-algorithm",
        "hash_version": 2, "hash_attribute": "user_id", "coverage": 1.0, "namespace": None,
        "description": listed[0]["description"], "forced_variations": {}, "guardrails": [],
        "variations": [{"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
                       {"name": "treatment", "weight": 0.5, "payload": {"algorithm": "ranker"}}]}
    assert listed[1]["namespace"] == {"id": "homepage", "start": 0.0, "end": 0.5}
    assert {d.key for d in api.store.snapshot().definitions} == {"rec-algorithm", "row-titles"}


def test_an_unknown_experiment_is_404_naming_the_known_ones(api: Api) -> None:
    response = api.get("/v1/experiments/nope")

    assert response.status_code == 404
    assert response.json()["detail"] == (
        "no experiment 'nope'; known: ['rec-algorithm', 'row-titles']")


def test_writing_without_a_token_is_401_and_with_a_wrong_one_403(api: Api) -> None:
    missing = api.put("/v1/experiments/new-ranker", definition(), headers={})
    wrong = api.put("/v1/experiments/new-ranker", definition(),
                    headers={"Authorization": "Bearer not-the-token"})

    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert (wrong.status_code, wrong.json()) == (403, {"detail": "the admin token is not valid"})
    assert api.get("/v1/experiments/new-ranker").status_code == 404


def test_a_definition_is_created_then_replaced_and_read_back_at_once(api: Api) -> None:
    created = api.put("/v1/experiments/new-ranker", definition())
    replaced = api.put("/v1/experiments/new-ranker", definition(coverage=0.5))

    assert (created.status_code, replaced.status_code) == (201, 200)
    assert api.get("/v1/experiments/new-ranker").json()["coverage"] == 0.5
    assert api.store.get("new-ranker") is not None


@pytest.mark.parametrize(("body", "field", "problem"), [
    (definition(variations=[{"name": "control", "weight": 0.7},
                            {"name": "treatment", "weight": 0.7}]),
     "body.variations", "variation weights must sum to 1; they sum to 1.4"),
    (definition(coverage=-1), "body.coverage", "greater than or equal to 0"),
    (definition(status="live"), "body.status", "'draft', 'running' or 'stopped'"),
    (definition(hash_version=9), "body.hash_version", "1 or 2"),
    (definition(variations=[{"name": "Control!", "weight": 1}]), "body.variations.0.name",
     "should match pattern"),
    (definition(variations=[{"name": "control", "weight": 1}]), "body.variations",
     "at least 2 items"),
    (definition(forced_variations={"u1": "nope"}), "body.forced_variations", "unknown variation"),
    ({k: v for k, v in definition().items() if k != "variations"}, "body.variations",
     "Field required"),
    (definition(extra=1), "body.extra", "Extra inputs are not permitted"),
    ([1, 2], "body", "valid dictionary"),
])
def test_a_bad_definition_is_422_naming_the_field(api: Api, body: Any, field: str,
                                                  problem: str) -> None:
    response = api.put("/v1/experiments/new-ranker", body)

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and problem in e["problem"] for e in errors), errors


def test_a_body_naming_another_experiment_is_422(api: Api) -> None:
    response = api.put("/v1/experiments/new-ranker", definition("other"))

    assert response.status_code == 422
    assert response.json()["detail"] == "the body's key 'other' is not the path's 'new-ranker'"


def test_a_malformed_key_in_the_path_is_422(api: Api) -> None:
    response = api.put("/v1/experiments/Not%20A%20Key", definition())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "path.key"


def test_an_experiment_that_ran_keeps_its_split_but_may_change_coverage(api: Api) -> None:
    running = api.get("/v1/experiments/rec-algorithm").json()
    new_split = {**running, "variations": [{**running["variations"][0], "weight": 0.2},
                                           {**running["variations"][1], "weight": 0.8}]}

    refused = api.put("/v1/experiments/rec-algorithm", new_split)
    narrowed = api.put("/v1/experiments/rec-algorithm", {**running, "coverage": 0.3})

    assert refused.status_code == 409
    assert "variations can no longer change" in refused.json()["detail"]
    assert narrowed.status_code == 200


def test_status_moves_forward_and_not_back_to_draft(api: Api) -> None:
    api.put("/v1/experiments/new-ranker", definition())

    started = api.put("/v1/experiments/new-ranker/status", {"status": "running"})
    back = api.put("/v1/experiments/new-ranker/status", {"status": "draft"})
    stopped = api.put("/v1/experiments/new-ranker/status", {"status": "stopped"})

    assert (started.status_code, started.json()["status"]) == (200, "running")
    assert back.status_code == 409
    assert back.json()["detail"] == (
        "status cannot go from running to draft; from running it can go to ['stopped']")
    assert stopped.json()["status"] == "stopped"


def test_every_change_that_took_effect_is_recorded_and_a_refused_one_is_not(api: Api) -> None:
    api.put("/v1/experiments/new-ranker", definition())
    api.put("/v1/experiments/new-ranker", definition(description="wider"))
    api.put("/v1/experiments/new-ranker/status", {"status": "running"})
    api.put("/v1/experiments/new-ranker/status", {"status": "draft"})  # 409: not recorded
    api.put("/v1/experiments/new-ranker/status", {"status": "stopped"})
    assert api.history.changes == [
        ("create", "new-ranker", "draft", "admin API"), ("update", "new-ranker", "draft",
                                                         "admin API"),
        ("status", "new-ranker", "running", "admin API"),
        ("status", "new-ranker", "stopped", "admin API")]


def test_a_change_the_record_refuses_is_not_made_and_gets_503(api: Api) -> None:
    api.history.failure = psycopg.OperationalError("postgres down")
    refused = api.put("/v1/experiments/new-ranker", definition())
    assert refused.status_code == 503 and "nothing was changed" in refused.json()["detail"]
    assert api.get("/v1/experiments/new-ranker").status_code == 404


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/v1/experiments/nope/status", {"status": "running"}, 404),
    ("/v1/experiments/rec-algorithm/status", {"status": "paused"}, 422),
    ("/v1/experiments/rec-algorithm/status", {}, 422),
])
def test_status_changes_of_unknown_experiments_or_to_unknown_statuses_are_refused(
        api: Api, path: str, body: Any, status: int) -> None:
    assert api.put(path, body).status_code == status


def test_an_experiment_may_not_take_a_namespace_range_another_one_holds(api: Api) -> None:
    overlapping = definition(namespace={"id": "homepage", "start": 0.4, "end": 1.0})
    beside = definition(namespace={"id": "homepage", "start": 0.5, "end": 1.0})

    refused = api.put("/v1/experiments/new-ranker", overlapping)

    assert refused.status_code == 409
    assert "overlap in namespace homepage" in refused.json()["detail"]
    assert api.put("/v1/experiments/new-ranker", beside).status_code == 201


# --- assignments ------------------------------------------------------------------------------
def test_an_assignment_names_the_variation_and_the_growthbook_bucket(api: Api) -> None:
    response = api.get("/v1/assignments", unit_id="u42", experiment="rec-algorithm")

    body = response.json()
    bucket = gb_hash("rec-algorithm", "u42", 2)
    assert bucket is not None
    assert response.status_code == 200
    assert body == {"experiment": "rec-algorithm", "in_experiment": True, "bucket": bucket,
                    "variation": "control" if bucket < 0.5 else "treatment",
                    "forced": False, "reason": "bucketed",
                    "payload": {"algorithm": "blend" if bucket < 0.5 else "ranker"}}


def test_without_an_experiment_every_running_one_is_assigned(api: Api) -> None:
    response = api.get("/v1/assignments", unit_id="u42")

    assert [a["experiment"] for a in response.json()] == ["rec-algorithm"]  # row-titles: draft


def test_a_draft_experiment_asked_for_by_name_answers_not_in_except_for_forced_units(
        api: Api) -> None:
    assert api.get("/v1/assignments", unit_id="u42", experiment="row-titles").json()[
        "reason"] == "draft"
    forced = api.get("/v1/assignments", unit_id="u1", experiment="row-titles").json()
    assert (forced["variation"], forced["forced"], forced["bucket"]) == ("explained", True, None)


def test_each_units_first_exposure_is_published_once(api: Api) -> None:
    for _ in range(3):
        api.get("/v1/assignments", unit_id="u42", experiment="rec-algorithm")
        api.get("/v1/assignments", unit_id="u42")
    api.get("/v1/assignments", unit_id="u43")
    api.get("/v1/assignments", unit_id="u1", experiment="row-titles")  # forced: never

    events = api.exposures(2)
    time.sleep(0.05)  # nothing else arrives

    assert sorted(e.data["unit_id"] for e in api.exposures(2)) == ["u42", "u43"]
    assert {e.id for e in events} == {"exposure:rec-algorithm:u42", "exposure:rec-algorithm:u43"}


def test_metrics_count_assignments_and_exposures_by_variation(api: Api) -> None:
    variation = api.get("/v1/assignments", unit_id="u42", experiment="rec-algorithm").json()[
        "variation"]
    api.get("/v1/assignments", unit_id="u42", experiment="rec-algorithm")
    api.get("/v1/assignments", unit_id="u9", experiment="row-titles")

    metrics = api.get("/metrics").text

    assert (f'experiments_assignments_total{{experiment="rec-algorithm",variation="{variation}"}}'
            " 2.0") in metrics
    assert 'experiments_assignments_total{experiment="row-titles",variation="none"} 1.0' in metrics
    assert (f'experiments_exposures_total{{experiment="rec-algorithm",variation="{variation}"}}'
            " 1.0") in metrics
    assert 'experiments_exposures_skipped_total{reason="duplicate"} 1.0' in metrics
    assert 'experiments_http_request_duration_seconds_count{method="GET",route="/v1/assignments"' \
        in metrics


@pytest.mark.parametrize(("params", "field"), [
    ({"unit_id": "u\t42", "experiment": "rec-algorithm"}, "query.unit_id"),
    ({"unit_id": "u\x8542"}, "query.unit_id"),
    ({"unit_id": "x" * 129}, "query.unit_id"),
    ({"unit_id": ""}, "query.unit_id"),
    ({"experiment": "rec-algorithm"}, "query.unit_id"),
    ({"unit_id": "u42", "experiment": "Rec Algorithm"}, "query.experiment"),
])
def test_a_malformed_unit_or_experiment_is_422_naming_it(api: Api, params: dict[str, str],
                                                         field: str) -> None:
    response = api.get("/v1/assignments", **params)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_assigning_in_an_unknown_experiment_is_404(api: Api) -> None:
    response = api.get("/v1/assignments", unit_id="u42", experiment="nope")
    assert response.status_code == 404
    assert "no experiment 'nope'" in response.json()["detail"]


# --- results ----------------------------------------------------------------------------------
def counts(exposed: int, converted: int) -> VariationCounts:
    return VariationCounts(exposed=exposed, converted=converted, impressions=exposed,
                           clicks=converted)


def test_results_per_variation_with_interval_lift_and_srm(api: Api) -> None:
    api.counts.by_experiment["rec-algorithm"] = {"control": counts(1000, 200),
                                                 "treatment": counts(1000, 250)}

    body = api.get("/v1/experiments/rec-algorithm/results").json()

    control, treatment = body["variations"]
    assert (body["control"], body["confidence"]) == ("control", 0.95)
    assert (control["exposed"], control["converted"], control["conversion_rate"]) == (
        1000, 200, 0.2)
    assert control["interval"] == {"low": pytest.approx(0.176377, abs=1e-6),
                                   "high": pytest.approx(0.225919, abs=1e-6)}
    assert control["lift"] is None
    assert treatment["lift"]["absolute"] == pytest.approx(0.05)
    assert treatment["lift"]["relative"] == pytest.approx(0.25)
    assert treatment["lift"]["p_value"] == pytest.approx(0.00742, abs=1e-5)
    assert body["sample_ratio_mismatch"] == {
        "observed": {"control": 1000, "treatment": 1000},
        "expected": {"control": 1000.0, "treatment": 1000.0},
        "chi_square": 0.0, "p_value": 1.0, "flagged": False, "threshold": 0.001}


def test_a_broken_split_is_flagged_in_the_results(api: Api) -> None:
    api.counts.by_experiment["rec-algorithm"] = {"control": counts(10_000, 500),
                                                 "treatment": counts(8_000, 400)}

    srm = api.get("/v1/experiments/rec-algorithm/results").json()["sample_ratio_mismatch"]

    assert srm["flagged"] is True and srm["p_value"] < 0.001


def test_results_of_an_experiment_without_units_list_its_variations_empty(api: Api) -> None:
    body = api.get("/v1/experiments/row-titles/results").json()

    assert [(v["name"], v["exposed"], v["conversion_rate"]) for v in body["variations"]] == [
        ("control", 0, None), ("explained", 0, None)]
    assert body["sample_ratio_mismatch"] is None


def test_the_plot_is_a_png(api: Api) -> None:
    api.counts.timelines["rec-algorithm"] = Timeline(
        (0, 60_000, 120_000), {"control": (10, 20, 30), "treatment": (12, 19, 31)},
        {"control": (1, 3, 5), "treatment": (2, 4, 9)})

    with_data = api.get("/v1/experiments/rec-algorithm/results.png")
    without = api.get("/v1/experiments/row-titles/results.png")

    for response in (with_data, without):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert api.get("/v1/experiments/nope/results.png").status_code == 404


def test_with_redis_down_results_are_503_and_definitions_still_served(api: Api) -> None:
    api.counts.down = True
    api.store.unavailable = True

    response = api.get("/v1/experiments/rec-algorithm/results")

    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    assert response.json() == {"detail": "redis did not answer: TimeoutError"}
    assert api.get("/v1/experiments").status_code == 200
    assert api.get("/v1/assignments", unit_id="u5").status_code == 200
    assert api.put("/v1/experiments/new-ranker", definition()).status_code == 503


# --- robustness and settings ------------------------------------------------------------------
def junk(rng: random.Random) -> str:
    alphabet = string.printable + "é😀{}%"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))


def segment(rng: random.Random) -> str:
    return quote(junk(rng), safe="") or "x"


def test_no_malformed_input_makes_the_service_answer_5xx(api: Api) -> None:
    rng = random.Random(11)
    for _ in range(150):
        responses = [
            api.get("/v1/assignments", unit_id=junk(rng), experiment=junk(rng)),
            api.get(f"/v1/experiments/{segment(rng)}/results"),
            api.put(f"/v1/experiments/{segment(rng)}",
                    {"key": junk(rng), "variations": junk(rng)}),
            api.put("/v1/experiments/rec-algorithm",
                    definition("rec-algorithm", coverage=rng.uniform(-2, 2),
                               seed=junk(rng), status=rng.choice(["draft", "running", "x"]))),
        ]
        for response in responses:
            assert response.status_code < 500, (response.request.url, response.text)


def test_the_service_is_ready_once_definitions_came_from_redis(api: Api) -> None:
    response = api.get("/readyz")
    assert (response.status_code, response.json()["checks"]) == (
        200, {"redis": "ok", "definitions": "ok"})


def test_production_refuses_the_development_admin_token() -> None:
    production: dict[str, Any] = {"environment": "production",
                                  "redis_url": "redis://redis:6379/0",
                                  "kafka_bootstrap_servers": "kafka:9092",
                                  "redis_password": "r" * 24,
                                  "kafka_security_protocol": "SASL_SSL",
                                  "kafka_username": "mlsd", "kafka_password": "k" * 24}
    with pytest.raises(ValidationError, match="EXPERIMENTS_ADMIN_TOKEN"):
        ExperimentsSettings(**production)  # the default is the dev token
    with pytest.raises(ValidationError, match="EXPERIMENTS_ADMIN_TOKEN"):
        ExperimentsSettings(**production, experiments_admin_token="short")
    assert ExperimentsSettings(**production, experiments_admin_token="x" * 32)
    assert ExperimentsSettings().experiments_admin_token.get_secret_value() == DEV_ADMIN_TOKEN


# --- guardrails (the rule itself: test_experiments_guardrails.py) -----------------------------
def guarded(**changes: Any) -> dict[str, Any]:
    return definition(status="running", guardrails=[
        {"metric": "click_through", "max_relative_drop": 0.1, "min_units": 1000}], **changes)


def lists(impressions: int, clicks: int) -> VariationCounts:
    return VariationCounts(exposed=5000, converted=1000, impressions=impressions, clicks=clicks)


def test_a_breached_guardrail_stops_the_running_experiment_and_records_who(api: Api) -> None:
    assert api.put("/v1/experiments/new-ranker", guarded()).status_code == 201
    assert api.get("/v1/experiments/new-ranker").json()["guardrails"] == [
        {"metric": "click_through", "max_relative_drop": 0.1, "max_relative_rise": None,
         "min_units": 1000}]
    watch = api.client.app.state.guardrails  # type: ignore[attr-defined]
    api.counts.by_experiment["new-ranker"] = {"control": lists(10_000, 1000),
                                              "treatment": lists(10_000, 1050)}
    assert watch.check_once() == []                              # holding: nothing happens
    assert api.get("/v1/experiments/new-ranker/results").json()["guardrail_breaches"] == []
    assert api.get("/v1/experiments/new-ranker").json()["status"] == "running"

    api.counts.by_experiment["new-ranker"]["treatment"] = lists(10_000, 700)
    shown = api.get("/v1/experiments/new-ranker/results").json()["guardrail_breaches"]
    assert [(b["variation"], b["metric"], b["relative"]) for b in shown] == [
        ("treatment", "click_through", -0.3)]
    stopped = watch.check_once()

    assert [b.experiment for b in stopped] == ["new-ranker"]
    assert api.get("/v1/experiments/new-ranker").json()["status"] == "stopped"
    assert api.history.changes[-1] == ("status", "new-ranker", "stopped",
                                       "guardrail:click_through")
    assert watch.check_once() == []                              # stopped: not checked again
    metrics = api.get("/metrics").text
    assert ('experiments_guardrail_stops_total{experiment="new-ranker",'
            'metric="click_through"} 1.0') in metrics


def test_an_experiment_without_guardrails_is_never_stopped(api: Api) -> None:
    api.put("/v1/experiments/new-ranker", definition(status="running"))
    api.counts.by_experiment["new-ranker"] = {"control": lists(10_000, 1000),
                                              "treatment": lists(10_000, 100)}
    assert api.client.app.state.guardrails.check_once() == []  # type: ignore[attr-defined]
    assert api.get("/v1/experiments/new-ranker").json()["status"] == "running"


def test_replications_each_with_its_own_split_are_pooled_into_one_result(api: Api) -> None:
    for key in ("rep-1", "rep-2"):
        api.put(f"/v1/experiments/{key}", definition(key, status="running"))
    api.counts.by_experiment["rep-1"] = {"control": counts(500, 100),
                                         "treatment": counts(500, 120)}
    api.counts.by_experiment["rep-2"] = {"control": counts(500, 100),
                                         "treatment": counts(500, 130)}

    body = api.get("/v1/results/pooled", experiment=["rep-1", "rep-2"]).json()

    control, treatment = body["variations"]
    assert body["experiment"] == "rep-1+rep-2"
    assert (control["exposed"], control["converted"]) == (1000, 200)
    assert (treatment["exposed"], treatment["converted"]) == (1000, 250)
    assert treatment["lift"]["p_value"] == pytest.approx(0.00742, abs=1e-5)  # as one test
    assert treatment["power"]["units_per_arm_used"] == 1000
    assert body["sample_ratio_mismatch"]["flagged"] is False
    # as of when each stopped: the later clicks of its units do not count
    api.counts.by_experiment_until[("rep-1", 100)] = {"control": counts(500, 90),
                                                      "treatment": counts(500, 110)}
    until = api.client.get("/v1/results/pooled", params={
        "experiment": ["rep-1", "rep-2"], "until_ms": [100, 200]}).json()
    assert [v["converted"] for v in until["variations"]] == [190, 240]
    assert api.client.get("/v1/results/pooled", params={
        "experiment": ["rep-1", "rep-2"], "until_ms": [100]}).status_code == 422


def test_pooling_other_tests_one_split_twice_or_unknown_keys_is_refused(api: Api) -> None:
    api.put("/v1/experiments/rep-1", definition("rep-1"))
    api.put("/v1/experiments/same-seed", definition("same-seed", seed="rep-1"))
    api.put("/v1/experiments/other", definition("other", variations=[
        {"name": "control", "weight": 0.3}, {"name": "treatment", "weight": 0.7}]))
    for keys, status, words in ((["rep-1", "other"], 422, "replications must be one test"),
                                (["rep-1", "same-seed"], 422, "share one split"),
                                (["rep-1", "nope"], 404, "no experiment"),
                                (["rep-1", "Bad Key"], 422, "not an experiment key"),
                                ([], 422, "")):
        answer = api.get("/v1/results/pooled", experiment=keys)
        assert answer.status_code == status and words in answer.text
    # one replication alone is its own result, as of its end if given
    one = api.get("/v1/results/pooled", experiment=["rep-1"])
    assert one.status_code == 200 and one.json()["experiment"] == "rep-1"
