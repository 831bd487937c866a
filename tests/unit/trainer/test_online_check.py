"""The online check's plumbing without servers: fake HTTP, labels, per-variant metrics, the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from services.devstack.summary import summary
from services.trainer.online_check import (
    Served,
    ask,
    compare,
    comparisons,
    relevant_titles,
)
from services.trainer.recs_metrics import recall_at_k
from services.trainer.recs_report_movielens import (
    ONLINE_BEGIN,
    ONLINE_END,
    online_section,
    update_online_section,
)

AS_OF = pd.Timestamp("1998-02-26", tz="UTC")


def answer(user: str, variant: str, *titles: str, fallbacks: tuple[str, ...] = ()) -> Served:
    return Served(user, variant, titles, "computed", fallbacks, "full")


def test_ask_percent_encodes_the_id_and_reads_the_variant_and_list() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={
            "variant": "treatment", "served_from": "computed", "fallbacks": [],
            "personalization": "full",
            "items": [{"content_id": "242"}, {"content_id": "302"}]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        served = ask(client, "http://recs", "a/b 1", 10)

    assert seen == ["http://recs/v1/recommendations/a%2Fb%201?k=10"]
    assert served == Served("a/b 1", "treatment", ("242", "302"), "computed", (), "full")


def test_ask_raises_on_an_error_answer() -> None:
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(503))) as client, \
            pytest.raises(httpx.HTTPStatusError):
        ask(client, "http://recs", "196", 10)


def test_relevant_titles_are_the_windows_watches_not_seen_before() -> None:
    hours = [-5, 1, 2, 3, 400]
    interactions = pd.DataFrame({
        "user_id": ["196", "196", "196", "22", "22"],
        "content_id": ["242", "242", "302", "51", "99"],
        "timestamp": [AS_OF + pd.Timedelta(hours=h) for h in hours],
    })
    until = (AS_OF + pd.Timedelta(days=7)).timestamp()

    relevant = relevant_titles(interactions, AS_OF.timestamp(), until)

    # 242 was watched before the cut (never recommended again); 99 is after the window
    assert relevant == {"196": {"302"}, "22": {"51"}}


def test_recall_is_the_offline_metric_on_the_same_lists() -> None:
    relevant = {"1": {"a", "b"}, "2": {"c"}, "3": {"d", "e", "f", "g"}}
    online = {"1": ["a", "x"], "2": ["y", "z"], "3": ["d", "e", "f"]}
    offline = {"1": ["a", "b"], "2": ["c"], "3": ["q"]}

    result = compare("control", ["1", "2", "3"], online, offline, relevant, k=10)

    assert result.algorithm == "hybrid blend" and result.users == 3
    assert result.recall_online.mean == pytest.approx((1 / 2 + 0 + 3 / 4) / 3)
    assert result.recall_offline.mean == pytest.approx((1 + 1 + 0) / 3)
    assert result.recall_difference.mean == pytest.approx(
        result.recall_online.mean - result.recall_offline.mean)
    # the same number recall_at_k gives on the matrices the offline evaluation builds
    ids = sorted({"a", "b", "c", "d", "e", "f", "g", "x", "y", "z"})
    top = np.array([[ids.index(t) for t in online[u]] + [-1] * (10 - len(online[u]))
                    for u in ("1", "2", "3")])
    labels = np.array([[t in relevant[u] for t in ids] for u in ("1", "2", "3")])
    assert result.recall_online.mean == pytest.approx(recall_at_k(top, labels, 10))


def test_identical_lists_agree_and_a_large_gap_does_not() -> None:
    users = [str(u) for u in range(40)]
    relevant = {u: {f"t{u}"} for u in users}
    hits = {u: [f"t{u}"] for u in users}
    misses = {u: ["nothing"] for u in users}

    same = compare("treatment", users, hits, hits, relevant, k=10)
    apart = compare("treatment", users, misses, hits, relevant, k=10)

    assert same.agree and same.recall_difference.mean == 0.0
    assert not apart.agree
    assert apart.recall_difference.high < 0 < apart.recall_offline.low


def test_users_without_a_relevant_title_count_on_neither_side() -> None:
    result = compare("control", ["1", "2"], {"1": ["a"], "2": ["b"]}, {"1": ["a"], "2": ["c"]},
                     {"1": {"a"}}, k=10)
    assert result.users == 1 and result.recall_online.mean == 1.0


def test_answers_are_compared_with_their_variants_algorithm_and_fallbacks_left_out() -> None:
    offline: dict[str, Any] = {
        "k": 10, "users": ["1", "2", "3"],
        "lists": {"hybrid blend": [["a"], ["b"], ["c"]], "ranker": [["x"], ["y"], ["z"]]}}
    relevant = {"1": {"a"}, "2": {"y"}, "3": {"c"}}
    answers = [answer("1", "control", "a"), answer("2", "treatment", "y"),
               answer("3", "treatment", "c", fallbacks=("model",)),
               answer("3", "holdout", "c")]

    results = {c.variant: c for c in comparisons(answers, offline, relevant)}

    assert set(results) == {"control", "treatment"}
    assert results["control"].users == 1 and results["control"].recall_offline.mean == 1.0
    assert results["treatment"].users == 1 and results["treatment"].recall_offline.mean == 1.0


def facts() -> dict[str, Any]:
    figure = {"mean": 0.12, "low": 0.08, "high": 0.16}
    return {
        "generated": "2026-12-06T01:00:00Z", "machine": {"arch": "x86_64", "cores": 2},
        "versions": {"python": "3.11.7", "numpy": "2", "httpx": "0.28"},
        "model": {"version": 3, "training_data_hash": "abcdef0123456789"},
        "command": "make movielens-check", "recommender": "http://127.0.0.1:8030",
        "dataset": "movielens", "users_asked": 129,
        "answers": {"variant": {"control": 60, "treatment": 69}, "served_from": {"computed": 129},
                    "personalization": {"full": 129}, "with_fallbacks": 0, "seconds": 3.2},
        "offline_all_users_recall_at_10": {"hybrid blend": 0.128, "ranker": 0.142},
        "bootstrap_resamples": 1000,
        "comparisons": [{"variant": "treatment", "algorithm": "ranker", "users": 69,
                         "recall_online": figure, "recall_offline": figure,
                         "recall_difference": {"mean": -0.01, "low": -0.03, "high": 0.01},
                         "ndcg_online": figure, "ndcg_offline": figure, "agree": True}],
    }


def test_the_pages_online_section_is_rewritten_between_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "movielens.md"
    page.write_text(f"# before\n{ONLINE_BEGIN}\nold numbers\n{ONLINE_END}\n# after\n")

    update_online_section(tmp_path, facts())

    text = page.read_text()
    assert "old numbers" not in text
    assert text.startswith("# before\n") and text.endswith(f"{ONLINE_END}\n# after\n")
    assert ("| treatment (ranker) | 69 | 0.120 (0.080-0.160) | 0.120 (0.080-0.160) | "
            "-0.010 (-0.030 to +0.010) |") in text
    assert online_section(facts()) in text


def test_a_page_without_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "movielens.md").write_text("# hand-written\n")
    with pytest.raises(ValueError, match="markers"):
        update_online_section(tmp_path, facts())


def test_the_movielens_demo_summary_shows_the_online_check_not_the_ab_test(
        tmp_path: Path) -> None:
    (tmp_path / "online").mkdir()
    (tmp_path / "online" / "movielens-online.json").write_text(json.dumps(facts()))

    text = summary(tmp_path, dataset="movielens")

    assert "no A/B simulation" in text and "A/B test rec-algorithm" not in text
    assert "treatment  ranker          69 users: online 0.120, offline 0.120" in text
    assert "agree within noise" in text
    assert "/v1/recommendations/196?k=5" in text
