"""`python -m services.simulator` (make ab-demo): the closed-loop A/B test on the running stack.

    simulated viewer ──GET /v1/recommendations/u──▶ recommender ── exposure ──▶ exposures
          │  (variant: rec-algorithm experiment, in process)  └─ impression ─▶ rec-impressions
          │ clicks drawn from the viewer's true taste (the world's click model)
          └──POST /v1/events (click, request_id)──▶ ingest ──▶ rec-clicks
                                     stream: exposures x clicks -> converted units per variation
    GET /v1/experiments/rec-algorithm/results ◀── experiments ◀── Redis counters

Writes reports/ab/: summary.md, results.json and the service's conversion plot (results.png).
Only the synthetic world has a click model: with MLSD_DATASET=movielens it says so and stops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

from services.common.bus import topics
from services.common.bus.kafka_bus import group_lags
from services.common.settings import DatasetSettings
from services.simulator.clicks import Reaction, Shown, click_events, react
from services.trainer.worlds.viewing import ViewingWorld, load

REPO_ROOT = Path(__file__).resolve().parents[2]
STREAM_GROUP = "stream-experiments"   # the stream processor's group joining exposures and clicks
AB_TOPICS = [topics.EXPOSURES, topics.REC_IMPRESSIONS, topics.REC_CLICKS]


def ask(client: httpx.Client, recommender: str, user: str, k: int) -> Shown:
    response = client.get(f"{recommender}/v1/recommendations/{user}", params={"k": k})
    response.raise_for_status()
    body = response.json()
    return Shown(user, body["request_id"], body["variant"],
                 tuple(item["content_id"] for item in body["items"]))


def run_viewer(client: httpx.Client, args: argparse.Namespace, world: ViewingWorld,
               user: str, row: int) -> Reaction:
    shown = ask(client, args.recommender, user, args.k)
    reaction = react(world, shown, np.random.default_rng([args.seed, row]))
    events = click_events(reaction)
    if events:
        posted = client.post(f"{args.ingest}/v1/events", json={"events": events})
        posted.raise_for_status()
    return reaction


def experiment_lag(bootstrap: str, group: str, topics_: list[str]) -> int:
    return sum(group_lags(bootstrap, {group: topics_}).values())


def wait_for_counts(client: httpx.Client, url: str, clicks: int, bootstrap: str,
                    timeout_s: float) -> dict[str, Any]:
    """Poll the results until the stream has counted every click posted (each is a new event)
    and its experiments group has nothing left to apply (exposures of returning viewers are
    not new, so they cannot be counted on), or time out."""
    deadline = time.monotonic() + timeout_s
    with tqdm(total=clicks, desc="stream applying exposures and clicks") as bar:
        while True:
            results: dict[str, Any] = client.get(url).raise_for_status().json()
            seen = sum(v["clicks"] for v in results["variations"])
            bar.n = min(seen, clicks)
            bar.refresh()
            done = seen >= clicks and experiment_lag(bootstrap, STREAM_GROUP, AB_TOPICS) == 0
            if done or time.monotonic() > deadline:
                return results
            time.sleep(1.0)


def summary(results: dict[str, Any], reactions: list[Reaction], seconds: float) -> str:
    by_variant: dict[str, list[Reaction]] = defaultdict(list)
    for reaction in reactions:
        by_variant[reaction.shown.variant].append(reaction)
    lines = [f"# A/B closed loop: {results['experiment']}", "",
             f"{len(reactions):,} simulated viewers in {seconds:.0f} s; clicks drawn from each "
             "viewer's true taste (the viewing world's click model).", "",
             "| variation | units exposed | converted | conversion (95 % CI) | lift vs control "
             "(95 % CI) | p-value | clicks / impression | expected clicks / list (truth) |",
             "|---|---|---|---|---|---|---|---|"]
    for v in results["variations"]:
        mine = by_variant.get(v["name"], [])
        expected = np.mean([r.expected_clicks for r in mine]) if mine else float("nan")
        rate = "-" if v["conversion_rate"] is None else (
            f"{v['conversion_rate']:.3f} ({v['interval']['low']:.3f}-{v['interval']['high']:.3f})")
        lift = v["lift"]
        lift_text = "-" if lift is None else (
            f"{lift['absolute']:+.3f} ({lift['absolute_interval']['low']:+.3f} to "
            f"{lift['absolute_interval']['high']:+.3f})")
        p_value = "-" if lift is None else f"{lift['p_value']:.3f}"
        ctr = v["clicks"] / v["impressions"] if v["impressions"] else float("nan")
        lines.append(f"| {v['name']} | {v['exposed']:,} | {v['converted']:,} | {rate} | "
                     f"{lift_text} | {p_value} | {ctr:.3f} | {expected:.3f} |")
    srm = results.get("sample_ratio_mismatch")
    if srm:
        lines += ["", f"Sample ratio: {srm['observed']} against {srm['expected']}, "
                      f"p = {srm['p_value']:.3f}: "
                      + ("MISMATCH, do not trust the results" if srm["flagged"] else "no mismatch")]
    lines += ["", "![conversion over time](results.png)"]
    return "\n".join(lines) + "\n"


def skip(out: Path) -> int:
    """MovieLens has no click model (nobody knows what its users would have clicked), so there
    is nothing to simulate: say so where the results would be, and drop any earlier run's."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").unlink(missing_ok=True)
    (out / "summary.md").write_text(SKIPPED + "\n")
    print(SKIPPED)
    return 0


SKIPPED = ("A/B closed loop skipped: MovieLens has no click model to simulate viewers with. "
           "The online check (make movielens-check) scores the served lists against the "
           "held-out ratings instead.")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--experiment", default="rec-algorithm")
    parser.add_argument("--recommender", default="http://127.0.0.1:8030")
    parser.add_argument("--ingest", default="http://127.0.0.1:8000")
    parser.add_argument("--experiments", default="http://127.0.0.1:8020")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--world", type=Path, default=REPO_ROOT / ".state/worlds/viewing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/ab")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if DatasetSettings().dataset != "synthetic":
        return skip(args.out)
    world = load(args.world)
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(world.users), size=min(args.users, len(world.users)), replace=False)
    users = world.users["user_id"].to_numpy()[rows]
    results_url = f"{args.experiments}/v1/experiments/{args.experiment}/results"
    start = time.monotonic()
    with httpx.Client(timeout=10.0) as client, ThreadPoolExecutor(args.concurrency) as pool:
        before = client.get(results_url).raise_for_status().json()
        clicks_before = sum(v["clicks"] for v in before["variations"])
        futures = [pool.submit(run_viewer, client, args, world, str(u), int(r))
                   for u, r in zip(users, rows, strict=True)]
        reactions = [f.result() for f in tqdm(futures, desc="simulated viewers", unit="user")]
        clicks = sum(len(r.clicked) for r in reactions)
        results = wait_for_counts(client, results_url, clicks_before + clicks,
                                  args.kafka, args.timeout)
        plot = client.get(f"{results_url}.png")
    seconds = time.monotonic() - start
    args.out.mkdir(parents=True, exist_ok=True)
    if plot.status_code == 200:
        (args.out / "results.png").write_bytes(plot.content)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    text = summary(results, reactions, seconds)
    (args.out / "summary.md").write_text(text)
    print(text)
    print(f"report: {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
