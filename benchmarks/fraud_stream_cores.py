"""The stream's drain on one core and on two, in turns: how its rate grows with the cores.

    PYTHONPATH=. .venv/bin/python benchmarks/fraud_stream_cores.py [--cpus 0 0,1] \
        [--rounds 2] [--scorers 2] [--backlog 300600] [--out DIR]
    make bench-stream-cores

ADR 0013 says the stream reaches the brief's 10,000 tx/s by adding cores (scorers, Redis
masters, brokers), and docs/fraud.md computes how many from the CPU a transaction. This
measures the slope that claim rests on, on the cores this machine has: benchmarks/fraud_stream.py
(the scorers' drain and the floor's, no latency runs) run whole under `taskset -c <cpus>`, so
every process it starts (redis-server, the Kafka broker, the scorers, the producer) shares those
cores, once per core set, in turns, --rounds times. A round's ratio (two cores' rate over
one's) is the claim; the floor (a fixed decision, no scoring: the consumer and publisher alone)
beside it says how much of the growth is the plumbing's. Each run's report is kept
(<out>/cpus-<set>-<round>.json); the summary (<out>/summary.json, printed, plotted in
<out>/fraud_stream_cores.png) gives per run the rate, the floor's, the cores the machine used
and the CPU a transaction by part.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from benchmarks.fraud_stream_turns import reported, run_row
from services.common.machine import describe
from services.devstack.worktrees import checkout_commit

REPO_ROOT = Path(__file__).resolve().parents[1]
AIM_TX_PER_S = 10_000


def drain_command(cpus: str, report_dir: str, args: argparse.Namespace) -> list[str]:
    """fraud_stream.py under `taskset -c cpus`: the scorers' drain, then the floor's."""
    return ["taskset", "-c", cpus, sys.executable, "benchmarks/fraud_stream.py",
            "--drain-scorers", str(args.scorers), "--rates",
            "--floor-processes", str(args.scorers), "--backlog", str(args.backlog),
            "--model-repository", str(args.model_repository), "--out", report_dir]


def cores_of(cpus: str) -> int:
    """How many cores a taskset list names ("0", "0,1", "0-3")."""
    count = 0
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def drain(cpus: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One fraud_stream.py run on `cpus`; its report."""
    return reported(lambda report_dir: drain_command(cpus, report_dir, args), REPO_ROOT, out)


def run_figures(cpus: str, round_: int, report: dict[str, Any]) -> dict[str, Any]:
    """One run's scoring drain (run_row's figures) and its floor's rate."""
    [scoring] = report["throughput"]
    [floor] = report["floor"]
    row = run_row(report, scoring)
    return {"cpus": cpus, "cores": cores_of(cpus), "round": round_, **row,
            "broker_us_per_tx": round(scoring["cores"]["kafka"] / row["tx_per_s"] * 1e6, 1),
            "floor_tx_per_s": floor["lag_probe"]["tx_per_s"],
            "floor_machine_cores": floor["cores"]["machine"]}


def by_round(runs: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each round's runs, fewest cores first, rounds in order."""
    return {round_: sorted((r for r in runs if r["round"] == round_), key=lambda r: r["cores"])
            for round_ in sorted({r["round"] for r in runs})}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round: each core count's rate over the fewest cores', for scoring and the floor."""
    rows = []
    for round_, mine in by_round(runs).items():
        base = mine[0]
        for r in mine[1:]:
            rows.append({"round": round_, "cores": f"{base['cores']} -> {r['cores']}",
                         "tx_per_s": [base["tx_per_s"], r["tx_per_s"]],
                         "scoring_ratio": round(r["tx_per_s"] / base["tx_per_s"], 3),
                         "floor_ratio": round(r["floor_tx_per_s"] / base["floor_tx_per_s"], 3),
                         "tx_per_s_per_core": [round(base["tx_per_s"] / base["cores"]),
                                               round(r["tx_per_s"] / r["cores"])]})
    return rows


def plot(summary: dict[str, Any], path: Path) -> None:
    """Rate against cores for each round, scoring and floor, with the aim and each round's
    ratio."""
    matplotlib.use("Agg")
    fig, (scoring, floor) = plt.subplots(1, 2, figsize=(11, 4))
    runs = summary["runs"]
    for round_, mine in by_round(runs).items():
        cores = [r["cores"] for r in mine]
        scoring.plot(cores, [r["tx_per_s"] for r in mine], marker="o", label=f"round {round_}")
        floor.plot(cores, [r["floor_tx_per_s"] for r in mine], marker="o",
                   label=f"round {round_}")
    scoring.axhline(AIM_TX_PER_S, color="red", linestyle="--", label="the brief: 10,000 tx/s")
    for row in summary["ratios"]:
        scoring.annotate(f"x{row['scoring_ratio']:.2f}", (max(r["cores"] for r in runs),
                         row["tx_per_s"][1]), textcoords="offset points", xytext=(-40, 6),
                         fontsize=8)
    for ax, title in ((scoring, f"Scoring: {summary['scorers']} scorers draining"),
                      (floor, "Floor: a fixed decision, no scoring")):
        ax.set_xlabel("cores (taskset -c: every process of the run on them)")
        ax.set_ylabel("transactions / s")
        ax.set_xticks(sorted({r["cores"] for r in runs}))
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"The stream's drain by cores, {summary['date'][:16]} UTC, "
                 f"{summary['machine']['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="+", default=["0", "0,1"],
                        help="core sets (taskset -c lists), each run in every round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scorers", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=300_600)
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/bench/stream_cores")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if len(args.cpus) < 2:
        raise SystemExit("give at least two core sets to compare")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for round_ in range(1, args.rounds + 1):
        order = args.cpus if round_ % 2 else list(reversed(args.cpus))  # neither always first
        for cpus in order:
            print(f"--- round {round_} of {args.rounds}: cpus {cpus}, "
                  f"{datetime.now(UTC):%H:%M:%S} UTC", flush=True)
            report = drain(cpus, args.out / f"cpus-{cpus}-{round_}.json", args)
            runs.append(run_figures(cpus, round_, report))
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": describe(),
               "commit": checkout_commit(),
               "how": "benchmarks/fraud_stream.py (--rates: no latency runs) under taskset -c, "
                      "every process it starts on those cores; the core sets in turns, "
                      "alternating which goes first",
               "backlog": args.backlog, "scorers": args.scorers, "runs": runs,
               "ratios": summarise(runs)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, args.out / "fraud_stream_cores.png")
    print(json.dumps(summary["ratios"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
