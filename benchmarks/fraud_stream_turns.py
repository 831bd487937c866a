"""The stream scorer's drain, this checkout against another commit, in turns: their ratio.

    PYTHONPATH=. .venv/bin/python benchmarks/fraud_stream_turns.py --ref 41d4e6a \
        [--rounds 2] [--drain-scorers 1 2] [--backlog 300600] [--out DIR]
    make bench-stream-turns REF=41d4e6a

This machine's speed moves by a third between days and by a tenth between minutes
(docs/fraud.md): a drain compared with another day's says little about the code. This runs
benchmarks/fraud_stream.py's drain (no latency runs, no floor) for the other commit, from a
`git worktree` of it with this checkout's virtualenv and Kafka jars linked in, then for this
checkout, old then new, --rounds times. Both sides get this checkout's model repository (a side
without a model decides on the rules alone, which fraud_stream.py now refuses; a --ref older
than that check must have its --model-repository option, session 14's code has). Each run's
report is kept (<out>/old-<round>.json, new-<round>.json) and the summary (<out>/summary.json,
printed) gives, per round and scorer count, each side's tx/s, the scorers' and Redis's CPU a
transaction and Redis's scripts' time a transaction, and new / old. A round's ratio is the
claim; the spread between rounds is how far to trust it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.machine import describe
from services.devstack.worktrees import commit, worktree

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDES = ("old", "new")
LINKED = (".venv", ".cache")  # what a worktree needs from this checkout to run the benchmark


def drain_command(tree: Path, report_dir: str, args: argparse.Namespace) -> list[str]:
    """`tree`'s fraud_stream.py, drains only, its report to `report_dir`."""
    command = [sys.executable, "benchmarks/fraud_stream.py",
               "--drain-scorers", *map(str, args.drain_scorers), "--rates",
               "--floor-processes", "--backlog", str(args.backlog),
               "--model-repository", str(args.model_repository), "--out", report_dir]
    if "--warm-up-drain" in (tree / "benchmarks/fraud_stream.py").read_text():
        # a side that can warm its broker up does not: an older one cannot, and each run
        # starts a broker of its own, cold for both sides alike
        command.append("--no-warm-up-drain")
    return command


def drain(tree: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One fraud_stream.py drain run from `tree`; its report."""
    return reported(lambda report_dir: drain_command(tree, report_dir, args), tree, out)


def reported(command: Callable[[str], list[str]], tree: Path, out: Path) -> dict[str, Any]:
    """Run `command(report_dir)` (a fraud_stream.py run writing its report there) from `tree`,
    keep the report as `out` and return it."""
    with tempfile.TemporaryDirectory(prefix="stream-run-") as report_dir:
        subprocess.run(command(report_dir), cwd=tree,
                       env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
        shutil.copyfile(Path(report_dir) / "fraud_stream.json", out)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def run_row(report: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A drain run's figures: tx/s by the lag probe, CPU a transaction by process, Redis's
    scripts' and their commands' time a transaction."""
    rate = run["lag_probe"]["tx_per_s"]
    cores = run["cores"]
    commands = run.get("redis_commands") or {}
    return {"commit": report["commit"][:7], "date": report["date"],
            "scorers": run["processes"], "tx_per_s": rate,
            "scorer_us_per_tx": round(cores["scorer"] / rate * 1e6, 1),
            "redis_us_per_tx": round(cores["redis"] / rate * 1e6, 1),
            "machine_cores": cores["machine"],
            "redis_scripts_us_per_tx": commands.get("scripts_usec_per"),
            "redis_commands_us_per_tx": commands.get("commands_usec_per"),
            "degraded": run["metrics"]["degraded"]}


def summarise(reports: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round and scorer count: both sides' rows and new / old of tx/s and of CPU."""
    rounds = sorted({r for _, r in reports})
    rows = []
    for round_ in rounds:
        sides = {side: {run["processes"]: run_row(reports[side, round_], run)
                        for run in reports[side, round_]["throughput"]}
                 for side in SIDES}
        for scorers in sorted(set(sides["old"]) & set(sides["new"])):
            old, new = sides["old"][scorers], sides["new"][scorers]
            rows.append({"round": round_, "scorers": scorers, "old": old, "new": new,
                         "tx_per_s_new_over_old": round(new["tx_per_s"] / old["tx_per_s"], 3),
                         "scorer_cpu_new_over_old": round(
                             new["scorer_us_per_tx"] / old["scorer_us_per_tx"], 3),
                         "redis_cpu_new_over_old": round(
                             new["redis_us_per_tx"] / old["redis_us_per_tx"], 3)})
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--drain-scorers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backlog", type=int, default=300_600)
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/bench/stream_turns")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stream-turns-"))
    reports: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        with worktree(args.ref, work / "old", links=LINKED) as old_tree:
            trees = {"old": old_tree, "new": REPO_ROOT}
            for round_ in range(1, args.rounds + 1):
                for side in SIDES:
                    print(f"--- round {round_} of {args.rounds}: {side} "
                          f"({commit(cwd=trees[side])[:7]}), {datetime.now(UTC):%H:%M:%S} UTC",
                          flush=True)
                    reports[side, round_] = drain(
                        trees[side], args.out / f"{side}-{round_}.json", args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": describe(), "old": commit(args.ref), "new": commit(),
               "how": "benchmarks/fraud_stream.py drains (--rates --floor-processes: no latency "
                      "runs, no floor), old then new, each round on the same machine",
               "backlog": args.backlog, "rounds": summarise(reports)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
