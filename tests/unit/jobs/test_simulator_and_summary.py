"""The A/B simulator's viewer and the demo's closing summary, without servers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.devstack.summary import summary
from services.simulator.__main__ import main as simulator_main
from services.simulator.clicks import Shown, click_events, react
from services.simulator.loop import NOT_REGISTERED, stopped_at_retrain
from services.trainer.worlds.viewing import ViewingConfig, ViewingWorld, generate_viewing


@pytest.fixture(scope="module")
def world() -> ViewingWorld:
    return generate_viewing(ViewingConfig(n_users=50, n_titles=80, seed=3))


def test_a_viewer_clicks_by_the_worlds_click_model_reproducibly(world: ViewingWorld) -> None:
    shown = Shown("u1", "r1", "treatment", tuple(f"t{i}" for i in range(10)))
    first = react(world, shown, np.random.default_rng([7, 1]))
    again = react(world, shown, np.random.default_rng([7, 1]))
    assert first == again
    assert 0 < first.expected_clicks < 10
    # Many draws: the mean number of clicks is the expected number.
    draws = [len(react(world, shown, np.random.default_rng([7, n])).clicked) for n in range(3000)]
    assert np.mean(draws) == pytest.approx(first.expected_clicks, rel=0.05)


def test_clicks_become_click_events_naming_their_list(world: ViewingWorld) -> None:
    shown = Shown("u1", "req-9", "control", ("t3", "t4", "t5"))
    reaction = react(world, shown, np.random.default_rng(0))
    reaction = type(reaction)(shown, reaction.expected_clicks, (0, 2))
    events = click_events(reaction)
    assert [e["data"]["content_id"] for e in events] == ["t3", "t5"]
    assert {e["data"]["request_id"] for e in events} == {"req-9"}
    assert [e["data"]["position"] for e in events] == [0, 2]
    assert len({e["id"] for e in events}) == 2 and all(e["type"] == "click" for e in events)
    assert react(world, Shown("u1", "r", "control", ()), np.random.default_rng(0)).clicked == ()


def test_the_demo_summary_reports_verdicts_and_the_ab_winner(tmp_path: Path) -> None:
    recs = tmp_path / "load" / "recs"
    recs.mkdir(parents=True)
    (recs / "locust_slo.csv").write_text(
        "name,requests,failures,p50_ms,p95_ms,p99_ms,max_ms,rps,p99_budget_ms,"
        "max_failure_ratio,verdict,problems\n"
        "GET /v1/recommendations/{user_id},1000,0,5,20,40,80,150.0,100.0,0.001,PASS,\n")
    (tmp_path / "ab").mkdir()
    interval = {"low": 0.5, "high": 0.6}
    (tmp_path / "ab" / "results.json").write_text(json.dumps({
        "experiment": "rec-algorithm", "control": "control", "sample_ratio_mismatch": None,
        "variations": [
            {"name": "control", "exposed": 1000, "conversion_rate": 0.55, "interval": interval,
             "lift": None},
            {"name": "treatment", "exposed": 1000, "conversion_rate": 0.60,
             "interval": interval, "lift": {"absolute": 0.05, "p_value": 0.01}}]}))
    text = summary(tmp_path)
    assert "PASS GET /v1/recommendations/{user_id}" in text and "p99    40.0 ms" in text
    assert "winner: treatment (p = 0.010)" in text
    assert "http://127.0.0.1:8030/docs" in text
    assert text.splitlines()[-1] == "The demo console (docs/console.md): http://127.0.0.1:8060"
    assert "(no A/B results" not in summary(tmp_path) and "(no A/B results" in summary(
        tmp_path / "missing")


def test_the_ab_simulation_is_skipped_on_movielens_and_drops_stale_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_DATASET", "movielens")
    monkeypatch.setattr("sys.argv", ["simulator", "--out", str(tmp_path)])
    (tmp_path / "results.json").write_text("{}")  # a synthetic run's, from before

    assert simulator_main() == 0

    assert not (tmp_path / "results.json").exists()
    assert "no click model" in (tmp_path / "summary.md").read_text()


def test_the_summary_reads_the_closed_loops_verdict_first(tmp_path: Path) -> None:
    """make demo runs make ab-demo, which writes reports/ab-loop/ab-loop.json: its verdict is the
    summary's, not "(no A/B results)"."""
    interval = {"low": 0.6, "high": 0.66}
    (tmp_path / "ab-loop").mkdir()
    (tmp_path / "ab-loop" / "ab-loop.json").write_text(json.dumps({
        "experiment": "ranker-v2-r1", "production_version": 1, "challenger_version": 2,
        "promoted_version": 2,
        "rollback_command": "python -m services.common.models rollback ranker",
        "verdict": {"reason": "treatment wins: conversion lift +0.0191"},
        "results": {"control": "control", "sample_ratio_mismatch": {"flagged": False},
                    "variations": [
                        {"name": "control", "exposed": 14941, "conversion_rate": 0.633,
                         "interval": interval, "lift": None},
                        {"name": "treatment", "exposed": 15059, "conversion_rate": 0.652,
                         "interval": interval, "lift": {"absolute": 0.019, "p_value": 0.0006}}]}}))
    text = summary(tmp_path)
    assert "(no A/B results" not in text
    assert "ranker v1 (control) against v2 (treatment)" in text
    assert "winner: treatment (p = 0.001)" in text
    assert "treatment wins: conversion lift +0.0191" in text
    assert "promoted ranker v2; to undo: python -m services.common.models rollback ranker" in text


def test_the_summary_says_when_the_loop_stopped_at_the_retrain_gate(tmp_path: Path) -> None:
    """A challenger the gate refused leaves ab-loop.json without an experiment: the summary says
    why there was no A/B instead of failing on the missing fields (a demo ended so once)."""
    (tmp_path / "ab-loop").mkdir()
    (tmp_path / "ab-loop" / "ab-loop.json").write_text(json.dumps({
        "environment": {}, "timings_s": {"baseline": 20.0},
        "gate": {"registered": False,
                 "reason": "refused: not better beyond the interval -0.109 to +0.754"}}))
    text = summary(tmp_path)
    assert "no A/B this run: the ranker retrained from the lake was not registered" in text
    assert "refused: not better beyond the interval -0.109 to +0.754" in text


def test_the_loop_ends_well_when_the_gate_refused_and_fails_when_the_retrain_did() -> None:
    assert stopped_at_retrain(NOT_REGISTERED, production=1) == 0
    assert stopped_at_retrain(1, production=1) == 1          # the retrain failed
    assert stopped_at_retrain(NOT_REGISTERED, production=None) == 2
    assert stopped_at_retrain(0, production=None) == 1       # registered, but nothing to test
