"""What `make demo` prints at the end: budgets, the A/B result or online check, next steps."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from services.console.settings import ConsoleSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
REPORTS = REPO_ROOT / "reports"

SERVICES = (
    ("ingest", 8000), ("model-server", 8010), ("experiments", 8020), ("recommender", 8030),
    ("fraud", 8040),
)


def load_verdicts(design_dir: Path) -> list[dict[str, str]]:
    """Every gate verdict of a design's last load runs (closed and open loop)."""
    rows: list[dict[str, str]] = []
    for name in ("locust_slo.csv", "openloop_slo.csv"):
        path = design_dir / name
        if path.exists():
            with path.open(newline="") as handle:
                rows += [row | {"mode": "closed loop" if name.startswith("locust")
                                else "open loop"} for row in csv.DictReader(handle)]
    return rows


def verdict_lines(reports: Path) -> list[str]:
    lines = []
    for design in ("recs", "fraud"):
        for row in load_verdicts(reports / "load" / design):
            p99, budget = float(row["p99_ms"]), float(row["p99_budget_ms"])
            lines.append(f"  {row['verdict']:<4} {row['name']:<36} {row['mode']:<11} "
                         f"p99 {p99:7.1f} ms (budget {budget:g}) at {float(row['rps']):6.1f} "
                         f"req/s, {row['failures']} of {row['requests']} failed")
    return lines or ["  (no load-test results: run `make load`)"]


def ab_lines(reports: Path) -> list[str]:
    """The A/B verdict: `make ab-demo`'s closed loop (reports/ab-loop/ab-loop.json, what `make
    demo` runs) if there is one, else `make simulate`'s (reports/ab/results.json)."""
    loop = reports / "ab-loop" / "ab-loop.json"
    if loop.exists():
        run: dict[str, Any] = json.loads(loop.read_text())
        if "experiment" not in run:  # the loop stopped at the retrain: no challenger to test
            reason = run.get("gate", {}).get("reason", "see reports/ab-loop/retrain.json")
            return ["  no A/B this run: the ranker retrained from the lake was not registered "
                    f"({reason})", "  from reports/ab-loop/ab-loop.json"]
        lines = [f"  {run['experiment']}: ranker v{run['production_version']} (control) against "
                 f"v{run['challenger_version']} (treatment), from reports/ab-loop/ab-loop.json",
                 *_result_lines(run["results"]), f"  {run['verdict']['reason']}"]
        if run.get("promoted_version") is not None:
            lines.append(f"  promoted ranker v{run['promoted_version']}; to undo: "
                         f"{run['rollback_command']}")
        return lines
    path = reports / "ab" / "results.json"
    if not path.exists():
        return ["  (no A/B results: run `make ab-demo`)"]
    return _result_lines(json.loads(path.read_text()))


def _result_lines(results: dict[str, Any]) -> list[str]:
    """An experiment's results (the experiments service's shape): each variation, the winner."""
    lines = []
    for v in results["variations"]:
        rate = v["conversion_rate"]
        interval = v["interval"]
        text = "-" if rate is None else (
            f"{rate:.3f} (95 % CI {interval['low']:.3f}-{interval['high']:.3f})")
        lift = v["lift"]
        if lift is not None:
            text += f", lift {lift['absolute']:+.3f}, p = {lift['p_value']:.3f}"
        lines.append(f"  {v['name']:<10} {v['exposed']:>6,} units, conversion {text}")
    treatment = next((v for v in results["variations"] if v["lift"] is not None), None)
    if treatment is not None:
        lift = treatment["lift"]
        if lift["p_value"] < 0.05:
            winner = treatment["name"] if lift["absolute"] > 0 else results["control"]
            lines.append(f"  winner: {winner} (p = {lift['p_value']:.3f})")
        else:
            lines.append(f"  no significant winner at this sample (p = {lift['p_value']:.3f}); "
                         "docs/experiments.md says why")
    srm = results.get("sample_ratio_mismatch")
    if srm and srm["flagged"]:
        lines.append("  SAMPLE RATIO MISMATCH: do not trust these results")
    return lines


def online_lines(reports: Path) -> list[str]:
    """The MovieLens online check's verdict per variant (reports/online/movielens-online.json)."""
    path = reports / "online" / "movielens-online.json"
    if not path.exists():
        return ["  (no online check: run `make movielens-check`)"]
    facts: dict[str, Any] = json.loads(path.read_text())
    lines = []
    for c in facts["comparisons"]:
        on, off, diff = c["recall_online"], c["recall_offline"], c["recall_difference"]
        lines.append(f"  {c['variant']:<10} {c['algorithm']:<13} {c['users']:>4} users: online "
                     f"{on['mean']:.3f}, offline {off['mean']:.3f}, difference "
                     f"{diff['mean']:+.3f} ({diff['low']:+.3f} to {diff['high']:+.3f}): "
                     + ("agree within noise" if c["agree"] else "DIFFERENT beyond noise"))
    return lines


def summary(reports: Path = REPORTS, dataset: str = "synthetic") -> str:
    if dataset == "movielens":
        middle = ["MovieLens 100k: no click model, so no A/B simulation. Online check instead: "
                  "recall@10 of the served lists", "against the held-out ratings "
                  "(reports/online/movielens-online.json):", *online_lines(reports)]
        user = "196"  # MovieLens's own ids
    else:
        middle = ["A/B test (make ab-demo's closed loop):", *ab_lines(reports)]
        user = "u42"
    lines = ["", "== make demo: summary", "", "Budgets (load tests, reports/load/*/summary.md):",
             *verdict_lines(reports), "", *middle, "", "Try it:",
             f"  curl 'http://127.0.0.1:8030/v1/recommendations/{user}?k=5'",
             "  curl 'http://127.0.0.1:8020/v1/experiments/rec-algorithm/results'",
             "", "API docs (OpenAPI):"]
    lines += [f"  {name:<13} http://127.0.0.1:{port}/docs" for name, port in SERVICES]
    lines += ["", "The stack keeps running: `make status` to inspect, `make stop` to stop.",
              "", f"The demo console (docs/console.md): {console_address()}"]
    return "\n".join(lines)


def console_address(settings: ConsoleSettings | None = None) -> str:
    """Where a browser on this machine finds the console, as `make run` started it."""
    settings = settings or ConsoleSettings()
    host = "127.0.0.1" if settings.console_host in {"0.0.0.0", "::"} else settings.console_host
    return f"http://{host}:{settings.console_port}"
