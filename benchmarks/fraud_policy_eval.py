"""The shipped fraud policy (config/fraud/policy.toml, its rules with the model) on the test week,
and the thresholds that minimise a stated cost beside the policy's own.

    make models     (the world and the production fraud model)
    .venv/bin/python benchmarks/fraud_policy_eval.py [--state .state] [--review-cost 5]
        [--false-decline-share 0.1]

The world's test week (its last 7 days, the trainer's split: the model never saw it) is replayed
through the fraud service's own pipeline (build_scorer: features, the policy's rules and lists,
the ONNX model, decide) in batches of 500 as the stream scorer takes them, after the 38 days
before it are recorded as history, each fraud label recorded when it arrives
(benchmarks/fraud_replay_compare.py's replay). Each decision's risk, ML score and forced action
are kept, so services/trainer/fraud_costs.py can re-decide the week under other thresholds; the
re-decision under the shipped thresholds must equal the service's actions, transaction for
transaction, or the script stops.

Reported: precision, recall and false-positive rate per action, on every transaction of the
week and on the trainer's protocol set (cards known compromised before the delay removed); cost
per threshold set with the review queue per day; the cheapest thresholds on the week (in
sample: fitted and scored on the same days) and, as the honest check, fitted on days 1-4 and
scored on days 5-7 against the shipped ones there. Writes docs/evaluation/fraud-policy.json
and renders docs/evaluation/fraud-policy.md from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import redis
import sklearn

from services.common.telemetry import Metrics
from services.devstack.servers import start_redis
from services.fraud.metrics import FraudMetrics
from services.fraud.policy_file import load_engine
from services.fraud.scorer import Scored
from services.fraud.settings import FraudSettings
from services.fraud.state_store import RedisFraudStore
from services.fraud.wiring import build_scorer, fraud_model_client
from services.trainer.fraud import Split
from services.trainer.fraud_costs import (
    ACTIONS,
    NEVER,
    CostMatrix,
    Decisions,
    Outcome,
    Thresholds,
    action_scores,
    actions,
    cheapest,
    grid,
    outcome,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fraud_replay_compare import HISTORY_DAYS, recorder, replay  # the same replay, beside us

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "docs" / "evaluation" / "fraud-policy.json"
PAGE = REPO_ROOT / "docs" / "evaluation" / "fraud-policy.md"
POLICY = REPO_ROOT / "config" / "fraud" / "policy.toml"
SEVERITY = {name: i for i, name in enumerate(ACTIONS)}


def describer(forced_by_rule: dict[str, int]) -> Any:
    def describe(scored: Sequence[Scored]) -> list[dict[str, Any]]:
        rows = []
        for s in scored:
            d = s.decision
            listed = any(r.source == "list" for r in d.reasons)
            rows.append({
                "transaction_id": s.transaction.transaction_id, "action": d.action,
                "risk": d.risk_score, "ml_score": -1.0 if d.ml_score is None else d.ml_score,
                "forced": max([0, *(forced_by_rule.get(h, 0) for h in d.rule_hits)]),
                "listed": SEVERITY[d.action] if listed else -1, "degraded": bool(d.degraded)})
        return rows
    return describe


def replay_week(state: Path, start: pd.Timestamp, days: int) -> pd.DataFrame:
    frame = pd.read_parquet(state / "worlds/transactions/transactions.parquet")
    end = start + pd.Timedelta(days=days)
    rows = frame[(frame.tx_datetime >= start - pd.Timedelta(days=HISTORY_DAYS))
                 & (frame.tx_datetime < end)]
    engine = load_engine(POLICY)
    forced = {rule.id: SEVERITY[rule.action] for rule in engine.policy.rules if rule.action}
    server = start_redis(Path(tempfile.mkdtemp(prefix="policy-eval-")))
    try:
        client = redis.Redis.from_url(server.address)
        settings = FraudSettings(redis_url=server.address, fraud_policy_path=POLICY,
                                 model_repository=state / "models")
        model = fraud_model_client(settings)
        scorer = build_scorer(settings, FraudMetrics(Metrics("policy_eval")),
                              RedisFraudStore(client), model)
        scorer.warm_up()
        decided = replay(scorer, recorder(client), rows, start.tz_localize(UTC).to_pydatetime(),
                         describer(forced))
        model.close()
        client.close()
    finally:
        server.stop()
    week = frame[(frame.tx_datetime >= start) & (frame.tx_datetime < end)]
    return week.merge(pd.DataFrame(decided), on="transaction_id", validate="one_to_one")


def decisions(week: pd.DataFrame, start: pd.Timestamp) -> Decisions:
    return Decisions(
        risk=week["risk"].to_numpy(np.float64), ml_score=week["ml_score"].to_numpy(np.float64),
        forced=week["forced"].to_numpy(np.int8), listed=week["listed"].to_numpy(np.int8),
        amount=week["amount"].to_numpy(np.float64),
        is_fraud=week["is_fraud"].to_numpy(bool),
        day=((week["tx_datetime"] - start).dt.days).to_numpy(np.int64))


def subset(d: Decisions, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Decisions:
    return Decisions(d.risk[mask], d.ml_score[mask], d.forced[mask], d.listed[mask],
                     d.amount[mask], d.is_fraud[mask], d.day[mask] - int(d.day[mask].min()))


def shipped(engine_policy: Any) -> Thresholds:
    levels, combine = engine_policy.levels, engine_policy.combine
    return Thresholds(levels.medium, levels.critical,
                      NEVER if combine.ml_decline_at is None else combine.ml_decline_at)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=REPO_ROOT / ".state")
    parser.add_argument("--review-cost", type=float, default=CostMatrix.review_cost)
    parser.add_argument("--false-decline-share", type=float,
                        default=CostMatrix.false_decline_share)
    args = parser.parse_args(argv)
    matrix = CostMatrix(args.false_decline_share, args.review_cost)
    config = json.loads((args.state / "worlds/transactions/config.json").read_text())
    last_day = pd.Timestamp(config["start_date"]) + pd.Timedelta(days=config["n_days"])
    test_start = last_day - pd.Timedelta(days=7)
    split = Split(test_start - pd.Timedelta(days=14))
    assert split.test_start == test_start

    began = time.perf_counter()
    week = replay_week(args.state, test_start, 7)
    replay_s = time.perf_counter() - began
    if week["degraded"].any():
        raise SystemExit("a replayed decision was degraded: the replay's inputs were not whole")
    d = decisions(week, test_start)
    policy = load_engine(POLICY).policy
    ours = shipped(policy)
    redecided = actions(d, ours)
    served = week["action"].map(SEVERITY).to_numpy(np.int8)
    mismatched = int((redecided != served).sum())
    if mismatched:
        raise SystemExit(f"re-deciding under the shipped thresholds differs from the service on "
                         f"{mismatched} transactions: fraud_costs.actions is not decide.py")

    protocol = split.test_mask(pd.read_parquet(
        args.state / "worlds/transactions/transactions.parquet"))
    frame_ids = pd.read_parquet(args.state / "worlds/transactions/transactions.parquet",
                                columns=["transaction_id"])["transaction_id"]
    in_protocol = week["transaction_id"].isin(set(frame_ids[protocol])).to_numpy()

    began = time.perf_counter()
    candidates = grid()
    best = cheapest(d, matrix, candidates)
    first, last = d.day < 4, d.day >= 4
    fitted_early = cheapest(subset(d, first), matrix, candidates)
    search_s = time.perf_counter() - began
    late = subset(d, last)
    brief = Thresholds(0.3, 0.8, NEVER)  # the brief's levels alone: .3 review, .8 decline
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "load_1m": round(os.getloadavg()[0], 2)},
        "versions": {"numpy": np.__version__, "pandas": pd.__version__,
                     "scikit-learn": sklearn.__version__, "onnxruntime": onnxruntime.__version__},
        "policy_version": policy.version, "rules": len(policy.rules),
        "model": _production(args.state),
        "week": {"start": str(test_start.date()), "days": 7, "transactions": len(d),
                 "frauds": int(d.is_fraud.sum()), "fraud_amount": round(float(
                     d.amount[d.is_fraud].sum()), 2),
                 "protocol_transactions": int(in_protocol.sum()),
                 "protocol_frauds": int(d.is_fraud[in_protocol].sum())},
        "replay": {"batch": 500, "history_days": HISTORY_DAYS, "seconds": round(replay_s, 1),
                   "actions": {a: int((served == i).sum()) for i, a in enumerate(ACTIONS)},
                   "redecided_equal": True},
        "cost_matrix": {"false_decline_share": matrix.false_decline_share,
                        "review_cost": matrix.review_cost, "describe": matrix.describe()},
        "shipped": outcome(d, ours, matrix).to_json(),
        "shipped_protocol_set": [s.__dict__ for s in action_scores(
            subset(d, in_protocol), actions(subset(d, in_protocol), ours))],
        "brief_levels_only": outcome(d, brief, matrix).to_json(),
        "cheapest_in_sample": best.to_json(),
        "holdout": {"fit_days": "1-4", "score_days": "5-7",
                    "fitted": fitted_early.thresholds.__dict__,
                    "fitted_on_score_days": outcome(late, fitted_early.thresholds,
                                                    matrix).to_json(),
                    "shipped_on_score_days": outcome(late, ours, matrix).to_json()},
        "sensitivity": [
            {"false_decline_share": share, "review_cost": review,
             **_brief(cheapest(d, CostMatrix(share, review), candidates))}
            for share in (0.05, 0.1, 0.3) for review in (2.0, 5.0, 15.0)],
        "search": {"candidates": len(candidates), "grid_step": 0.05,
                   "seconds": round(search_s, 1)},
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    PAGE.write_text(render(result))
    print(json.dumps({k: result[k] for k in ("week", "replay")}, indent=1))
    print(PAGE.read_text())
    return 0


def _brief(o: Outcome) -> dict[str, Any]:
    return {"thresholds": o.thresholds.__dict__, "total_cost": o.total_cost,
            "reviews_per_day": o.reviews_per_day}


def _production(state: Path) -> dict[str, Any]:
    pointer = json.loads((state / "models/fraud/promotions.json").read_text())
    return {"name": "fraud", "promotions": pointer if isinstance(pointer, dict) else
            pointer[-1:]}


def _t(t: dict[str, float]) -> str:
    ml = "never" if t["ml_decline_at"] >= NEVER else f"{t['ml_decline_at']:.2f}"
    dcl = "never" if t["decline_at"] >= NEVER else f"{t['decline_at']:.2f}"
    return f"review >= {t['review_at']:.2f}, decline >= {dcl}, ML alone >= {ml}"


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render(r: dict[str, Any]) -> str:
    w = r["week"]
    lines = [
        "# The shipped fraud policy on the test week, and cost-based thresholds",
        "",
        "Generated by `.venv/bin/python benchmarks/fraud_policy_eval.py` from "
        "[fraud-policy.json](fraud-policy.json); every number below is in that file.",
        "",
        "```",
        "  test week (7 d, the model never saw it) ─▶ fraud service pipeline, batches of 500,",
        "  after 38 d of history ─▶ per transaction: action, risk, ML score, forced action",
        "    ─▶ precision / recall / FPR per action     (the shipped policy)",
        "    ─▶ re-decided under other thresholds ─▶ expected cost ─▶ the cheapest thresholds",
        "```",
        "",
        "| run | |",
        "|---|---|",
        f"| date | {r['when']} |",
        f"| machine | {r['machine']['cpus']} cores shared, {r['machine']['platform']}, Python "
        f"{r['machine']['python']}, load {r['machine']['load_1m']} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in r['versions'].items())} |",
        f"| policy | `config/fraud/policy.toml` version {r['policy_version']}, "
        f"{r['rules']} rules, with the production model |",
        f"| week | from {w['start']}: {w['transactions']:,} transactions, {w['frauds']:,} frauds "
        f"({w['fraud_amount']:,.0f} in amount); protocol set (cards known compromised removed) "
        f"{w['protocol_transactions']:,} / {w['protocol_frauds']:,} |",
        f"| replay | {r['replay']['seconds']} s; actions {r['replay']['actions']}; re-decided "
        f"under the shipped thresholds = the service's, every transaction |",
        f"| cost matrix | {r['cost_matrix']['describe']} |",
        "",
        "## The shipped policy, per action",
        "",
        "| set | action | count | frauds | precision | recall | false-positive rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, rows in (("every transaction", r["shipped"]["scores"]),
                        ("protocol set", r["shipped_protocol_set"])):
        for s in rows:
            lines.append(f"| {label} | {s['action']} | {s['count']:,} | {s['frauds']:,} | "
                         f"{_f(s['precision'])} | {_f(s['recall'])} | "
                         f"{s['false_positive_rate']:.5f} |")
    lines += [
        "",
        "## Thresholds by expected cost",
        "",
        "| thresholds | total cost | missed fraud | false declines | reviews | reviews / day "
        "(max day) | declines / day |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key in (("shipped: levels .3/.6/.8 + ML alone .8", "shipped"),
                       ("the brief's levels alone (.3 review, .8 decline)", "brief_levels_only"),
                       ("cheapest on the week (in sample)", "cheapest_in_sample")):
        o = r[key]
        lines.append(
            f"| {label}: {_t(o['thresholds'])} | {o['total_cost']:,.0f} | "
            f"{o['missed_fraud_amount']:,.0f} | {o['false_decline_cost']:,.0f} | "
            f"{o['review_cost']:,.0f} | {o['reviews_per_day']} ({o['reviews_max_day']}) | "
            f"{o['declines_per_day']} |")
    h = r["holdout"]
    fitted, ship = h["fitted_on_score_days"], h["shipped_on_score_days"]
    lines += [
        "",
        f"Out of sample: fitted on days {h['fit_days']} ({_t(h['fitted'])}), scored on days "
        f"{h['score_days']}: cost {fitted['total_cost']:,.0f} against the shipped thresholds' "
        f"{ship['total_cost']:,.0f} on the same days (reviews / day {fitted['reviews_per_day']} "
        f"vs {ship['reviews_per_day']}).",
        "",
        "Where the optimum moves with the costs (cheapest on the week):",
        "",
        "| false decline share | review cost | thresholds | total cost | reviews / day |",
        "|---|---|---|---|---|",
    ]
    for s in r["sensitivity"]:
        lines.append(f"| {s['false_decline_share']:.0%} | {s['review_cost']:g} | "
                     f"{_t(s['thresholds'])} | {s['total_cost']:,.0f} | "
                     f"{s['reviews_per_day']} |")
    lines += ["", f"{r['search']['candidates']:,} threshold sets searched (grid "
              f"{r['search']['grid_step']}) in {r['search']['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
