"""`make ab-demo`: the model loop on the running stack, from logged traffic to a promoted ranker.

    1 baseline   simulated viewers ─▶ recommender (rec-algorithm: blend | production ranker)
                 impressions with features as served, clicks ─▶ Kafka ─▶ lake sink ─▶ Parquet
    2 retrain    python -m services.trainer.ranker_from_lake: clicks ⋈ logged features, gate
                 against production on the newest lists; registered unpromoted, or refused
    3 A/B        control = production ranker, treatment = challenger (payload ranker_version
                 N), rec-algorithm paused meanwhile; ROUNDS replications ranker-v<N>-r<i>, each
                 its own seed (an independent split) with every world user once, then pooled
                 by the experiments service (GET /v1/results/pooled): rates, intervals, lift,
                 SRM, the sample needed (power) beside the sample used
    4 verdict    services/simulator/verdict.py, beside the world's truth (expected conversion)
    5 promote    the winner through the registry; the rollback command printed
    6 restore    the rounds stopped, rec-algorithm resumed as it was

Why rounds: the world has 6,000 users, and 3,000 per arm at ~65 % conversion detect a rise of
about 3.5 points; a better ranker is worth less than that (the power calculation in the result
says how many it needed). The world has no memory of a list (clicks change no user's state), so
a user asked again in a new round with a new split is a new, independent unit: R rounds give
R x 6,000 units. A real product gets its units from time instead (new users, more days).

Writes <out>/ab-loop.json (every number, with date, machine, versions, load and counts),
<out>/img/ab-loop.png (the service's conversion plot) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from matplotlib.figure import Figure

from services.common.bus import topics
from services.common.kafka_access import KafkaTarget
from services.common.models import ModelRepository, ModelSettings
from services.common.settings import DatasetSettings, PlatformSettings
from services.simulator.clicks import Reaction
from services.simulator.traffic import Stack, experiment_lag, run_viewers, wait_for_counts
from services.simulator.verdict import ArmTruth, Verdict, decide
from services.trainer.worlds.viewing import ViewingWorld, load

REPO_ROOT = Path(__file__).resolve().parents[2]
LAKE_GROUP = "lake-sink"
LAKE_TOPICS = [topics.REC_IMPRESSIONS, topics.REC_CLICKS]
BASELINE = "rec-algorithm"
DEV_ADMIN_TOKEN = "dev-experiments-admin-token"  # the experiments service's local default
ROUNDS = 5
DEFINITIONS_REFRESH_S = 6.0  # the recommender re-reads definitions every 2 s (two, and margin)
ROLLBACK = "python -m services.common.models rollback ranker"
# make retrain-ranker's exit when its gate refused the challenger (ranker_from_lake's main),
# mirrored, not imported: jobs and tools never import each other (pyproject.toml)
NOT_REGISTERED = 2


def say(message: str) -> None:
    print(f"[ab-demo] {message}", flush=True)  # noqa: T201 (a CLI's progress)


def viewers(world: ViewingWorld, count: int, seed: int) -> tuple[list[str], list[int]]:
    rows = np.random.default_rng(seed).choice(len(world.users), size=min(count, len(world.users)),
                                              replace=False)
    return [str(u) for u in world.users["user_id"].to_numpy()[rows]], [int(r) for r in rows]


def wait_for_lake(kafka: KafkaTarget, timeout_s: float) -> None:
    """The sink commits offsets only after a file is durable: lag 0 means all is in Parquet."""
    deadline = time.monotonic() + timeout_s
    while experiment_lag(kafka, LAKE_GROUP, LAKE_TOPICS) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the lake sink still lags after {timeout_s:.0f} s")
        time.sleep(1.0)


def stopped_at_retrain(code: int, production: int | None) -> int:
    """The loop's exit when the retrain left no challenger. The gate refusing one no better than
    production is the loop working (the logged sample decides, and it can be too small to
    tell): an outcome, exit 0, so `make demo` goes on to its load test and summary. A failed
    retrain, or no production ranker to compare with, is an error."""
    return 0 if code == NOT_REGISTERED and production is not None else code or 1


def retrain(out: Path) -> tuple[int, dict[str, Any]]:
    """make retrain-ranker, as its own process (jobs never import each other): exit code, report."""
    report = out / "retrain.json"
    report.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "services.trainer.ranker_from_lake",
                           "--report", str(report)], cwd=REPO_ROOT, check=False)
    return done.returncode, json.loads(report.read_text()) if report.exists() else {}


def challenger_definition(key: str, production: int, challenger: int) -> dict[str, Any]:
    return {"key": key, "status": "running", "seed": key, "hash_attribute": "user_id",
            "hash_version": 2, "coverage": 1.0,
            "description": f"ranker v{challenger} (trained on logged clicks) against production "
                           f"v{production}",
            "variations": [
                {"name": "control", "weight": 0.5, "payload": {"algorithm": "ranker"}},
                {"name": "treatment", "weight": 0.5,
                 "payload": {"algorithm": "ranker", "ranker_version": challenger}}]}


class Experiments:
    """The experiments service's admin API, as the loop uses it."""

    def __init__(self, client: httpx.Client, url: str, token: str) -> None:
        self._client, self._url = client, url
        self._headers = {"Authorization": f"Bearer {token}"}

    def status(self, key: str) -> str | None:
        answer = self._client.get(f"{self._url}/v1/experiments/{key}")
        if answer.status_code == 404:
            return None
        return str(answer.raise_for_status().json()["status"])

    def put(self, definition: dict[str, Any]) -> None:
        self._client.put(f"{self._url}/v1/experiments/{definition['key']}", json=definition,
                         headers=self._headers).raise_for_status()

    def set_status(self, key: str, status: str) -> None:
        self._client.put(f"{self._url}/v1/experiments/{key}/status", json={"status": status},
                         headers=self._headers).raise_for_status()

    def pooled(self, keys: list[str], until_ms: list[int]) -> dict[str, Any]:
        answer: dict[str, Any] = self._client.get(
            f"{self._url}/v1/results/pooled",
            params={"experiment": keys, "until_ms": until_ms}).raise_for_status().json()
        return answer


def truth_by_arm(reactions: list[Reaction]) -> dict[str, ArmTruth]:
    arms: dict[str, list[Reaction]] = defaultdict(list)
    for reaction in reactions:
        arms[reaction.shown.variant].append(reaction)
    return {arm: ArmTruth.of([r.expected_conversion for r in mine],
                             [r.expected_clicks for r in mine]) for arm, mine in arms.items()}


def environment() -> dict[str, Any]:
    packages = ("numpy", "scipy", "scikit-learn", "onnxruntime", "duckdb", "confluent-kafka")
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
            "python": platform.python_version(),
            "packages": {p: metadata.version(p) for p in packages},
            "load_average_1m": os.getloadavg()[0]}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.simulator.loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-users", type=int, default=6_000)
    parser.add_argument("--ab-users", type=int, default=6_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-promote", action="store_true", help="report the winner only")
    parser.add_argument("--world", type=Path, default=REPO_ROOT / ".state/worlds/viewing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/ab-loop")
    parser.add_argument("--timeout", type=float, default=180.0)
    return parser.parse_args()


class Loop:
    """The steps, sharing the stack's clients and the run's clock."""

    def __init__(self, args: argparse.Namespace, client: httpx.Client) -> None:
        self.args, self.client = args, client
        self.stack = Stack(kafka=PlatformSettings(service_name="simulator").kafka_access())
        self.world = load(args.world)
        self.repository = ModelRepository(ModelSettings().model_repository)
        self.experiments = Experiments(client, self.stack.experiments, os.environ.get(
            "MLSD_EXPERIMENTS_ADMIN_TOKEN", DEV_ADMIN_TOKEN))
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        self.timings[name] = round(time.monotonic() - self.started - sum(self.timings.values()),
                                   1)

    def baseline(self) -> list[Reaction]:
        users, rows = viewers(self.world, self.args.baseline_users, self.args.seed)
        say(f"1 baseline: {len(users):,} viewers under {BASELINE}")
        reactions = run_viewers(self.client, self.stack, self.world, users, rows,
                                self.args.seed, self.args.k, self.args.concurrency,
                                "baseline viewers")
        wait_for_lake(self.stack.kafka, self.args.timeout)
        self.lap("baseline")
        return reactions

    def ab_rounds(self, production: int, challenger: int
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], list[Reaction]]:
        """The rounds, then their pooled results; the baseline experiment paused meanwhile."""
        paused = self.experiments.status(BASELINE) == "running"
        if paused:
            self.experiments.set_status(BASELINE, "stopped")
        keys: list[str] = []
        ends: list[int] = []   # each round counted as of its end: a unit's later clicks (in a
        rounds: list[dict[str, Any]] = []   # later round) would count as its conversion here
        reactions: list[Reaction] = []
        try:
            for round_ in range(1, self.args.rounds + 1):
                key = f"ranker-v{challenger}-r{round_}"
                self.experiments.put(challenger_definition(key, production, challenger))
                keys.append(key)
                time.sleep(DEFINITIONS_REFRESH_S)   # every recommender worker has it
                mine = self.round(key, round_)
                reactions += mine
                rounds.append(wait_for_counts(
                    self.client, f"{self.stack.experiments}/v1/experiments/{key}/results",
                    sum(len(r.clicked) for r in mine), self.stack.kafka, self.args.timeout))
                ends.append(int(time.time() * 1000))
                self.experiments.set_status(key, "stopped")
            pooled = self.experiments.pooled(keys, ends)
        finally:
            for key in keys:
                self.experiments.set_status(key, "stopped")
            if paused:
                self.experiments.set_status(BASELINE, "running")
        self.lap("ab")
        return pooled, rounds, reactions

    def round(self, key: str, round_: int) -> list[Reaction]:
        users, rows = viewers(self.world, self.args.ab_users, self.args.seed + round_)
        say(f"3 A/B round {round_}/{self.args.rounds} {key}: {len(users):,} viewers")
        return run_viewers(self.client, self.stack, self.world, users, rows,
                           self.args.seed + round_, self.args.k, self.args.concurrency,
                           f"{key} viewers")


def main() -> int:
    args = arguments()
    if DatasetSettings().dataset != "synthetic":
        say("skipped: MovieLens has no click model to simulate viewers with")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=10.0) as client:
        loop = Loop(args, client)
        baseline = loop.baseline()
        say("2 retrain from the lake (make retrain-ranker)")
        code, gate = retrain(args.out)
        loop.lap("retrain")
        production = loop.repository.production_version("ranker")
        if code != 0 or production is None:
            say(f"no challenger (exit {code}): {gate.get('reason', 'see above')}; stopping here")
            (args.out / "ab-loop.json").write_text(json.dumps(
                {"environment": environment(), "gate": gate, "timings_s": loop.timings},
                indent=2))
            return stopped_at_retrain(code, production)
        challenger = int(gate["version"])
        say(f"3 A/B: production v{production} (control) against v{challenger} (treatment), "
            f"{args.rounds} rounds")
        results, rounds, reactions = loop.ab_rounds(production, challenger)
    truth = truth_by_arm(reactions)
    verdict = decide(results, truth)
    promoted = None
    if verdict.winner == "treatment" and not args.no_promote:   # the test decides, not the truth
        loop.repository.promote("ranker", challenger, actor=f"ab-demo:{results['experiment']}")
        promoted = challenger
    record = {
        "environment": environment(), "experiment": results["experiment"],
        "production_version": production, "challenger_version": challenger,
        "baseline_viewers": len(baseline),
        "baseline_clicks": sum(len(r.clicked) for r in baseline),
        "ab_viewers": len(reactions), "gate": gate, "results": results, "rounds": rounds,
        "truth": {arm: vars(t) for arm, t in truth.items()}, "verdict": vars(verdict),
        "promoted_version": promoted, "rollback_command": ROLLBACK if promoted else None,
        "timings_s": loop.timings}
    (args.out / "img").mkdir(exist_ok=True)
    plot_rounds(record, args.out / "img" / "ab-loop.png")
    (args.out / "ab-loop.json").write_text(json.dumps(record, indent=2))
    say(summary(record, verdict))
    return 0


def plot_rounds(record: dict[str, Any], path: Path) -> None:
    """Each round's conversion per arm and the pooled one, 95 % Wilson intervals, and the
    truth (expected conversion under the world's click model) as a dashed line per arm."""
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    axes = figure.subplots()
    columns = [*(f"round {i + 1}" for i in range(len(record["rounds"]))), "pooled"]
    for offset, arm in ((-0.12, "control"), (0.12, "treatment")):
        rates, lows, highs = [], [], []
        for results in [*record["rounds"], record["results"]]:
            v = next(v for v in results["variations"] if v["name"] == arm)
            rates.append(v["conversion_rate"])
            lows.append(v["conversion_rate"] - v["interval"]["low"])
            highs.append(v["interval"]["high"] - v["conversion_rate"])
        version = record["production_version"] if arm == "control" else \
            record["challenger_version"]
        line = axes.errorbar(np.arange(len(columns)) + offset, rates, yerr=[lows, highs],
                             fmt="o", capsize=3, label=f"{arm}: ranker v{version}")
        axes.axhline(record["truth"][arm]["expected_conversion"], linestyle="--",
                     color=line[0].get_color(), alpha=0.6, label=f"{arm}: truth")
    axes.set_xticks(np.arange(len(columns)), columns)
    axes.set_ylabel("conversion (viewers with a click)")
    axes.set_title(f"{record['experiment']}: {record['verdict']['winner'] or 'no'} winner")
    axes.legend(fontsize=8, ncols=2)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def summary(record: dict[str, Any], verdict: Verdict) -> str:
    lines = ["", f"{record['experiment']}: production v{record['production_version']} "
                 f"(control) against v{record['challenger_version']} (treatment)"]
    for v in record["results"]["variations"]:
        truth = record["truth"].get(v["name"], {})
        lines.append(f"  {v['name']:>9}: {v['converted']:,}/{v['exposed']:,} converted = "
                     f"{v['conversion_rate']:.4f} ({v['interval']['low']:.4f}-"
                     f"{v['interval']['high']:.4f}); truth "
                     f"{truth.get('expected_conversion', 0):.4f}")
        if v.get("power"):
            p = v["power"]
            lines.append(f"  sample: {p['units_per_arm_used']:,} per arm used, "
                         f"{p['units_per_arm_needed'] or 0:,} needed for this lift (80 % power, "
                         f"5 %); detectable with the units used: {p['minimum_detectable_lift']}")
    srm = record["results"]["sample_ratio_mismatch"]
    lines.append(f"  SRM: p = {srm['p_value']:.3f}, flagged: {srm['flagged']}")
    lines.append(f"  verdict: {verdict.reason}")
    if record["promoted_version"]:
        lines.append(f"  promoted ranker v{record['promoted_version']}; to undo: {ROLLBACK}")
    else:
        lines.append("  nothing promoted: production stays")
    lines.append(f"  took {sum(record['timings_s'].values()):.0f} s: {record['timings_s']}")
    lines.append(f"  written: {record['experiment']} -> ab-loop.json, img/ab-loop.png")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
