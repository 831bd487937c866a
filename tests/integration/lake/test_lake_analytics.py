"""Analytics over a lake the sink wrote from the real broker: the A/B counts equal the online
counters the stream keeps in the real Redis; the fraud, engagement and catalog reports say what
the published events say; `python -m services.analytics` writes them all."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from services.analytics import ab, engagement, fraud
from services.common.bus import topics
from services.common.bus.consumer import ConsumerMetrics, RunnerConfig
from services.common.bus.kafka_bus import ensure_topics, group_lags, start_group_at_end
from services.common.bus.ports import OutboundMessage
from services.common.bus.runtime import build_kafka_consumer
from services.common.bus.topics import TopicSpec
from services.common.lake.sql import open_lake
from services.common.settings import PlatformSettings
from services.common.telemetry import Metrics
from services.designs.experiments.counts import experiment_counts
from services.lake.app import build_sink_loop
from services.lake.events import LAKE_TOPICS
from services.stream.experiments import ExperimentEventsHandler
from tests import lake_events as ev
from tests.harness import REPO_ROOT, ServerProcess
from tests.support.lake import metrics_for, publish, settings_for, wait_for

pytestmark = pytest.mark.integration
AB_TOPICS = (topics.EXPOSURES, topics.REC_IMPRESSIONS, topics.REC_CLICKS)




def ab_events(run: str, experiment: str, seed: int = 7) -> list[OutboundMessage]:
    """Units exposed, lists served and clicked, in every order the joins must survive: clicks
    before and after exposure, clicks without a list, lists outside the experiment, a unit
    exposed twice, events published twice."""
    rng = random.Random(seed)
    out: list[OutboundMessage] = []
    n = 0
    for u in range(40):
        unit, variation = f"{run}u{u}", "treatment" if u % 2 else "control"
        exposed_at = ev.T0 + timedelta(minutes=rng.randrange(0, 120))
        out.append(ev.exposure(run, experiment, unit, variation, exposed_at, n))
        n += 1
        if u % 7 == 0:  # exposed again later: still one unit, first time kept
            out.append(ev.exposure(run, experiment, unit, variation,
                                   exposed_at + timedelta(minutes=30), n))
            n += 1
        for r in range(rng.randrange(0, 3)):
            request = f"{run}q{u}x{r}"
            in_experiment = rng.random() < 0.85
            shown_at = exposed_at + timedelta(minutes=rng.randrange(-20, 40))
            out.append(ev.impression(run, unit, request, experiment if in_experiment else None,
                                     variation if in_experiment else None, shown_at, n,
                                     empty=u % 4 < 2 and r == 0))   # a list with no title
            n += 1
            if rng.random() < 0.5:
                out.append(ev.click(run, unit, request, shown_at + timedelta(seconds=30), n,
                                    position=rng.randrange(0, 5)))
                n += 1
        if rng.random() < 0.2:  # a click on no served list
            out.append(ev.click(run, unit, None, exposed_at + timedelta(minutes=5), n))
            n += 1
    return out + out[::9]  # every ninth event published twice


# x0..x3 declined on amount_spike (x0 also new_device): x0, x1, x2 fraud; x3 fraud, then
# cleared by a later label. x4, x5 reviewed on new_device: x4 fraud, x5 unlabelled.
# x6..x9 approved: x6 fraud (missed), x7, x8 not, x9 unlabelled.
DECISIONS = [("decline", ["amount_spike", "new_device"]), *[("decline", ["amount_spike"])] * 3,
             *[("review", ["new_device"])] * 2, *[("approve", [])] * 4]
LABELS = {0: True, 1: True, 2: True, 3: False, 4: True, 6: True, 7: False, 8: False}


def fraud_events(run: str) -> list[OutboundMessage]:
    out = [ev.decision(run, i, action, hits) for i, (action, hits) in enumerate(DECISIONS)]
    # x0 decided again later (the other path): the first decision stands
    later = ev.decision(run, 0, "approve", [], ev.T0 + timedelta(seconds=5))
    out.append(OutboundMessage(later.topic, later.key, later.value.replace(
        f"{run}-decision-0".encode(), f"{run}-decision-0-again".encode())))
    out += [ev.label(run, i, fraud) for i, fraud in LABELS.items()]
    first_label = ev.label(run, 3, True, ev.T0 - timedelta(hours=1))  # overturned by the later
    out.append(OutboundMessage(first_label.topic, first_label.key, first_label.value.replace(
        f"{run}-label-3".encode(), f"{run}-label-3-first".encode())))
    return out


def engagement_events(run: str) -> list[OutboundMessage]:
    return [*(ev.watch(run, i, ev.T0 + timedelta(minutes=20 * i)) for i in range(12)),
            *(ev.title(run, i, ["drama", "comedy"][: 1 + i % 2]) for i in range(3))]


@dataclass
class Filled:
    root: Path
    run: str
    experiment: str
    client: redis.Redis
    namespace: str


@pytest.fixture(scope="module")
def filled(kafka_server: ServerProcess, redis_server: ServerProcess,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    run = f"a{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("lake") / "lake"
    settings = settings_for(kafka_server, root, lake_flush_interval_s=0.5)
    namespace = f"it{uuid.uuid4().hex[:6]}"
    online = PlatformSettings(kafka_bootstrap_servers=kafka_server.address, service_name="it",
                              redis_url=redis_server.address, feature_namespace=namespace)
    online_group = f"experiments-it-{run}"
    ensure_topics(kafka_server.address, [TopicSpec(t, 3) for t in LAKE_TOPICS])
    start_group_at_end(kafka_server.address, settings.lake_group, LAKE_TOPICS)
    start_group_at_end(kafka_server.address, online_group, AB_TOPICS)
    client = redis.Redis.from_url(redis_server.address)

    sink = build_sink_loop(settings, metrics_for(settings))
    counters = build_kafka_consumer(
        online, client, ExperimentEventsHandler(client, namespace),
        ConsumerMetrics(Metrics("it")),
        RunnerConfig(group=online_group, topics=AB_TOPICS, commit_interval_s=0.2))
    threads = [threading.Thread(target=r.run, daemon=True) for r in (sink, counters)]
    for thread in threads:
        thread.start()
    experiment = f"{run}exp"
    try:
        publish(kafka_server, ab_events(run, experiment) + fraud_events(run)
                + engagement_events(run))
        wait_for(lambda: group_lags(kafka_server.address, {
            settings.lake_group: LAKE_TOPICS, online_group: AB_TOPICS}) == {
            settings.lake_group: 0, online_group: 0}, 90, "both groups done")
    finally:
        sink.stop()
        counters.stop()
        for thread in threads:
            thread.join(30)
    yield Filled(root, run, experiment, client, namespace)
    client.close()


def test_the_ab_counts_from_the_lake_equal_the_online_counters(filled: Filled) -> None:
    online = experiment_counts(filled.client, filled.experiment, filled.namespace)
    with open_lake(filled.root) as con:
        from_lake = ab.ab_counts(con, filled.experiment)
        assert ab.experiments(con) == [filled.experiment]

    assert set(online) == {"control", "treatment"}
    assert from_lake == online
    assert all(c.exposed == 20 and c.converted > 0 and c.clicks > 0 for c in online.values())
    assert all(0 < c.empty < c.impressions for c in online.values())


def test_the_fraud_report_gives_the_decision_mix_and_each_rules_precision_and_recall(
        filled: Filled) -> None:
    with open_lake(filled.root) as con:
        mix = fraud.decision_mix(con).records()
        rules = {r["rule"]: r for r in fraud.rule_quality(con).records()}
        actions = {r["action"]: r for r in fraud.action_quality(con).records()}

    assert [(m["decisions"], m["approve"], m["review"], m["decline"], m["labelled"], m["fraud"])
            for m in mix] == [(10, 4, 2, 4, 8, 5)]
    spike, device = rules["amount_spike"], rules["new_device"]
    assert (spike["hits"], spike["hit_rate"], spike["labelled"], spike["true_positives"]) == (
        4, 0.4, 4, 3)
    assert (spike["precision"], spike["recall"]) == (0.75, 0.6)
    assert (device["hits"], device["labelled"], device["precision"], device["recall"]) == (
        3, 2, 1.0, 0.4)
    assert {a: (r["decisions"], r["labelled"], r["precision"], r["recall"])
            for a, r in actions.items()} == {
        "approve": (4, 3, 0.3333, 0.2), "decline": (4, 4, 0.75, 0.6),
        "review": (2, 1, 1.0, 0.2)}


def test_engagement_and_catalog_reports_count_watchers_titles_and_genres(
        filled: Filled) -> None:
    with open_lake(filled.root) as con:
        daily = engagement.daily_engagement(con).records()
        summary = engagement.catalog_summary(con).records()[0]
        genres = {g["genre"]: g for g in engagement.genres(con).records()}
        top = engagement.top_titles(con, limit=1).records()[0]

    day = daily[0]
    assert (day["active_users"], day["watches"], day["completion_rate"]) == (5, 12, 0.5)
    assert day["impressions"] > 0 and 0 < day["ctr"] <= 1
    # titles t0..t2 in the catalog; watches on t0..t6
    assert summary == {"titles": 3, "titles_watched": 3, "watched_titles_not_in_catalog": 4}
    assert (genres["drama"]["titles"], genres["comedy"]["titles"]) == (3, 1)
    assert top["watches"] == 2 and top["title"] == "Title 0"


def test_make_analytics_writes_every_report_with_its_plots(filled: Filled,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "analytics"
    subprocess.run([sys.executable, "-m", "services.analytics", "--lake-root", str(filled.root),
                    "--out", str(out)], cwd=REPO_ROOT, check=True, capture_output=True)

    names = sorted(p.name for p in out.iterdir())
    assert names == ["ab.md", "ab.png", "catalog.md", "engagement.md", "engagement.png",
                     "fraud.md", "fraud_decisions.png", "tables.json"]
    assert f"Experiment `{filled.experiment}`" in (out / "ab.md").read_text()
    assert "| amount_spike | 4 | 0.4 | 4 | 3 | 0.75 | 0.6 |" in (out / "fraud.md").read_text()
