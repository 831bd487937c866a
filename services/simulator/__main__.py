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
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from services.common.settings import DatasetSettings, PlatformSettings
from services.simulator.clicks import Reaction
from services.simulator.traffic import Stack, run_viewers, wait_for_counts
from services.trainer.worlds.viewing import load

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    parser.add_argument("--kafka", default=None,
                        help="brokers (default: MLSD_KAFKA_BOOTSTRAP_SERVERS); credentials, if "
                             "any, from the MLSD_KAFKA_* settings")
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
    kafka = PlatformSettings(service_name="simulator").kafka_access()  # its own Kafka user
    if args.kafka:
        kafka = dataclasses.replace(kafka, bootstrap_servers=args.kafka)
    stack = Stack(args.recommender, args.ingest, args.experiments, kafka)
    with httpx.Client(timeout=10.0) as client:
        before = client.get(results_url).raise_for_status().json()
        clicks_before = sum(v["clicks"] for v in before["variations"])
        reactions = run_viewers(client, stack, world, [str(u) for u in users],
                                [int(r) for r in rows], args.seed, args.k, args.concurrency)
        clicks = sum(len(r.clicked) for r in reactions)
        results = wait_for_counts(client, results_url, clicks_before + clicks,
                                  kafka, args.timeout)
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
