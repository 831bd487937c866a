"""Decisions on a replayed week, this checkout against another commit: what changed and why.

    .venv/bin/python benchmarks/fraud_replay_compare.py [--ref 7e4b163] [--days 7]

The default world's last --days (the seeder's events, unshifted: transactions in time order,
each fraud label when it arrives) are scored by each version's own pipeline, in batches of 500
as the stream scorer takes them, after the 38 days before them are recorded as history; each
version runs in its own process (the other commit from a `git worktree`) against its own
redis-server, with the same model repository and policy file. Compared per transaction: action,
risk score, rule hits, ML score and reason codes. ML factors (`ML_<FEATURE>` reasons) are
compared for reviews and declines only: approvals carry none now by design (docs/fraud.md).
Writes benchmarks/results/fraud_replay_compare.json.

The other commit's side runs this file against that commit's modules, so --ref must have the
modules it imports: 7e4b163 (session 8's layout) is the oldest that does. Older pipelines were
compared by the script of their time (benchmarks/results/fraud_replay_compare_before_layout.json:
da84063, the last commit before the layout moved, against session 4's e60b948).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd
import redis

from services.common.bus.envelope import decode_event
from services.common.telemetry import Metrics
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.fraud.state import FraudReport
from services.designs.payloads import FraudLabelData, TransactionData, payload_of
from services.devstack.servers import start_redis
from services.fraud.metrics import FraudMetrics
from services.fraud.scorer import FraudScorer, Scored
from services.fraud.settings import FraudSettings
from services.fraud.state_store import RedisFraudStore
from services.fraud.wiring import build_scorer, fraud_model_client
from services.seeder.history import transaction_messages

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "benchmarks" / "results" / "fraud_replay_compare.json"
HISTORY_DAYS = 38
BATCH = 500


Record = Callable[[Sequence[TransactionData], Sequence[FraudReport]], None]


def recorder(client: redis.Redis) -> Record:
    """The fraud state's adapter, recording only (the stream processor's path)."""
    return cast(Record, RedisFraudState(client).record)


def decisions_of(scored: Sequence[Scored]) -> list[dict[str, Any]]:
    return [{"transaction_id": s.transaction.transaction_id, "action": s.decision.action,
             "risk_score": round(s.decision.risk_score, 6),
             "rule_hits": list(s.decision.rule_hits),
             "ml_score": None if s.decision.ml_score is None else round(s.decision.ml_score, 6),
             "reasons": [r.code for r in s.decision.reasons]} for s in scored]


def events(rows: pd.DataFrame) -> Iterator[tuple[datetime, TransactionData | FraudReport]]:
    """The seeder's events, every label at its label time, as the writer's and scorer's inputs."""
    for message in transaction_messages(rows, timedelta(0), datetime(2100, 1, 1, tzinfo=UTC)):
        event = decode_event(message.value)
        payload = payload_of(event.type, event.data)
        if isinstance(payload, TransactionData):
            yield event.time, payload
        elif isinstance(payload, FraudLabelData):
            yield event.time, FraudReport(payload.transaction_id, payload.terminal_id,
                                          payload.merchant_id, payload.transaction_time,
                                          event.time)


def replay(scorer: FraudScorer, record: Record, rows: pd.DataFrame, start: datetime,
           describe: Callable[[Sequence[Scored]], list[dict[str, Any]]] = decisions_of,
           ) -> list[dict[str, Any]]:
    """History before `start` recorded; from it, transactions scored in batches, each label
    recorded when it arrives (the batch before it decided first)."""
    decisions: list[dict[str, Any]] = []
    history: list[TransactionData] = []
    reports: list[FraudReport] = []
    pending: list[TransactionData] = []
    for at, item in events(rows):
        if at < start:
            if isinstance(item, TransactionData):
                history.append(item)
            else:
                reports.append(item)
            continue
        if history or reports:
            # in batches, as the seeder sends it: 38 days as one pipeline outlasted the
            # client's socket timeout on a slow day (session 18)
            for i in range(0, max(len(history), len(reports)), BATCH):
                record(history[i:i + BATCH], reports[i:i + BATCH])
            history, reports = [], []
        if isinstance(item, TransactionData):
            pending.append(item)
        if pending and (len(pending) == BATCH or isinstance(item, FraudReport)):
            decisions += describe(scorer.score(pending, "stream"))
            pending = []
        if isinstance(item, FraudReport):
            record([], [item])
    if pending:
        decisions += describe(scorer.score(pending, "stream"))
    return decisions


def side(out: Path, days: float) -> None:
    """Runs in the version under test (its `services` first on sys.path): decisions as JSON."""
    frame = pd.read_parquet(REPO_ROOT / ".state/worlds/transactions/transactions.parquet")
    start = frame.tx_datetime.max() - pd.Timedelta(days=days)
    rows = frame[frame.tx_datetime >= start - pd.Timedelta(days=HISTORY_DAYS)]
    server = start_redis(Path(tempfile.mkdtemp(prefix="replay-")))
    try:
        client = redis.Redis.from_url(server.address)
        settings = FraudSettings(redis_url=server.address,
                                 fraud_policy_path=REPO_ROOT / "config/fraud/policy.toml",
                                 model_repository=REPO_ROOT / ".state/models")
        model = fraud_model_client(settings)
        scorer = build_scorer(settings, FraudMetrics(Metrics("replay")),
                              RedisFraudStore(client), model)
        scorer.warm_up()
        out.write_text(json.dumps(replay(scorer, recorder(client), rows,
                                         start.tz_localize(UTC).to_pydatetime())))
        model.close()
        client.close()
    finally:
        server.stop()


def run_side(root: Path, out: Path, days: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(root), "MLSD_LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--side", str(out),
                    "--days", str(days)], cwd=root, env=env, check=True)


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    by_id = {d["transaction_id"]: d for d in old}
    differences: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    for n in new:
        o = by_id[n["transaction_id"]]
        found = []
        for field in ("action", "risk_score", "rule_hits", "ml_score"):
            if o[field] != n[field]:
                found.append(field)
        factors_old = [c for c in o["reasons"] if c.startswith("ML_")]
        factors_new = [c for c in n["reasons"] if c.startswith("ML_")]
        if n["action"] != "approve" and factors_old != factors_new:
            found.append("ml_factors (review/decline)")
        rest_old = [c for c in o["reasons"] if not c.startswith("ML_")]
        rest_new = [c for c in n["reasons"] if not c.startswith("ML_")]
        if rest_old != rest_new:
            found.append("rule and policy reasons")
        for field in found:
            differences[field] += 1
            examples.setdefault(field, []).append({"old": o, "new": n})
    return {"transactions": len(new), "same_ids": len(by_id) == len(new),
            "differences": dict(differences),
            "examples": {k: v[:3] for k, v in examples.items()},
            "actions_old": dict(Counter(d["action"] for d in old)),
            "actions_new": dict(Counter(d["action"] for d in new)),
            "approvals_with_factors_old": sum(1 for d in old if d["action"] == "approve" and any(
                c.startswith("ML_") and c not in ("ML_SCORE", "ML_HIGH_RISK")
                for c in d["reasons"]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="7e4b163", help="the commit to compare with")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--side", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args.side, args.days)
        return 0
    # here, not at the top: the other commit's side imports this file against its own modules,
    # which may predate this one
    from services.devstack.worktrees import commit, worktree  # noqa: PLC0415
    work = Path(tempfile.mkdtemp(prefix="replay-compare-"))
    with worktree(args.ref, work / "old", links=(".state",)) as old_root:
        run_side(old_root, work / "old.json", args.days)
        run_side(REPO_ROOT, work / "new.json", args.days)
    old = json.loads((work / "old.json").read_text())
    new = json.loads((work / "new.json").read_text())
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "ref": args.ref,
              "commit": commit(),
              "days": args.days, "batch": BATCH, **compare(old, new)}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
