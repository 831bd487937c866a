"""The console's pure parts: form checks, fraud presets, verdicts, load bounds, addresses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.console import presets
from services.console.forms import BadInput, list_query, score_body
from services.console.load_results import load_results
from services.console.loadrun import LoadOutOfBounds, LoadRequest, bounded
from services.console.settings import ConsoleSettings
from services.console.upstreams import upstreams
from services.console.verdicts import verdict
from services.fraud.schemas import ScoreRequest

NOW = datetime(2026, 12, 6, 14, 30, tzinfo=UTC)


def test_a_list_query_names_the_field_it_refuses() -> None:
    assert list_query(" u42 ", "") == list_query("u42", None)
    with pytest.raises(BadInput, match=r"^k: "):
        list_query("u42", "ten")
    with pytest.raises(BadInput, match=r"^user: "):
        list_query("", "5")
    with pytest.raises(BadInput, match=r"^k: "):
        list_query("u42", "500")


def test_the_fraud_form_parses_numbers_and_leaves_the_rest_to_the_api() -> None:
    form = {k: str(v) for k, v in presets.build("ordinary", NOW, "x")[0].items()}
    body = score_body(form | {"timestamp": ""})
    assert body["amount"] == 42.5 and isinstance(body["latitude"], float)
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    with pytest.raises(BadInput, match="amount: not a number: 'lots'"):
        score_body(form | {"amount": "lots"})
    with pytest.raises(BadInput, match="latitude: required"):
        score_body(form | {"latitude": " "})


@pytest.mark.parametrize("key", list(presets.BY_KEY))
def test_every_preset_is_a_valid_score_request_on_a_fresh_card(key: str) -> None:
    first, second = presets.build(key, NOW, "run1"), presets.build(key, NOW, "run2")
    for body in first:
        ScoreRequest.model_validate_json(json.dumps(body))  # as the API reads it
        assert datetime.fromisoformat(body["timestamp"]) <= NOW  # never refused as future
    assert {b["card_id"] for b in first}.isdisjoint({b["card_id"] for b in second})
    assert len({b["transaction_id"] for b in first}) == len(first)


def test_the_burst_is_ordered_and_inside_one_minute() -> None:
    times = [datetime.fromisoformat(b["timestamp"]) for b in presets.build("card-testing", NOW)]
    assert times == sorted(times) and times[-1] - times[0] < timedelta(minutes=1)


@pytest.mark.parametrize("utc_hour", range(24))
def test_the_night_preset_is_three_in_the_morning_local_at_any_hour(utc_hour: int) -> None:
    instant = NOW.replace(hour=utc_hour)
    local = presets.at_local_hour(instant, 3)
    assert local == instant and local.hour == 3


def _results(p_value: float, absolute: float, flagged: bool = False) -> dict[str, object]:
    return {"control": "control", "sample_ratio_mismatch": {"flagged": flagged},
            "variations": [{"name": "control", "exposed": 500, "lift": None},
                           {"name": "treatment", "exposed": 500,
                            "lift": {"p_value": p_value, "absolute": absolute}}]}


def test_a_verdict_names_the_winner_only_when_significant_and_the_split_is_sound() -> None:
    assert verdict(_results(0.01, 0.05)).startswith("treatment wins")
    assert verdict(_results(0.01, -0.05)).startswith("control wins")
    assert verdict(_results(0.3, 0.05)).startswith("no significant difference")
    assert verdict(_results(0.01, 0.05, flagged=True)).startswith("sample ratio mismatch")
    assert verdict({"variations": [{"name": "control", "exposed": 0}]}) == "no exposures yet"


def test_a_load_run_is_bounded_in_time_and_rate() -> None:
    fine = LoadRequest(design="fraud", rps=100, duration_s=30)
    assert bounded(fine, 60, 300) == fine
    with pytest.raises(LoadOutOfBounds, match="duration: at most 60 s"):
        bounded(LoadRequest(design="fraud", rps=100, duration_s=61), 60, 300)
    with pytest.raises(LoadOutOfBounds, match="rate: at most 300 req/s"):
        bounded(LoadRequest(design="recs", rps=301, duration_s=5), 60, 300)
    with pytest.raises(ValueError, match="greater than 0"):
        LoadRequest(design="recs", rps=0, duration_s=5)


def test_addresses_come_from_the_services_settings_and_can_be_overridden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_FRAUD_PORT", "9999")
    found = upstreams(ConsoleSettings(console_urls={"ingest": "http://ingest:8000/"}))
    assert found["fraud"].url == "http://127.0.0.1:9999"
    assert found["ingest"].url == "http://ingest:8000"
    assert {"fraud-stream-1", "fraud-stream-2"} <= found.keys()
    with pytest.raises(ValueError, match="names no service: \\['fruad'\\]"):
        upstreams(ConsoleSettings(console_urls={"fruad": "http://x"}))


def test_load_results_prefer_a_local_run_to_the_committed_ones(tmp_path: Path) -> None:
    evaluation = tmp_path / "docs"
    committed = evaluation / "make-load-2026-12-06T0518Z" / "fraud"
    committed.mkdir(parents=True)
    row = ("name,requests,failures,p50_ms,p95_ms,p99_ms,max_ms,rps,p99_budget_ms,"
           "max_failure_ratio,verdict,problems\nPOST /v1/score,100,0,1,2,3.5,4,50.0,50.0,"
           "0.001,PASS,\n")
    (committed / "openloop_slo.csv").write_text(row)
    reports = tmp_path / "reports"
    assert load_results(reports, evaluation).run_dir == committed.parent
    local = reports / "load" / "fraud"
    local.mkdir(parents=True)
    (local / "locust_slo.csv").write_text(row)
    found = load_results(reports, evaluation)
    assert found.run_dir == reports / "load"
    assert [(g.mode, g.p99_ms, g.verdict) for g in found.gates] == [
        ("closed loop (Locust)", 3.5, "PASS")]
    assert load_results(tmp_path / "none", tmp_path / "none").run_dir is None
