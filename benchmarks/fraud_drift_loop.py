"""The fraud drift loop, scripted: prices shift, the PSI gauges cross the alert threshold, a gated
retrain from the lake brings them back under.

    make drift-fraud      # .venv/bin/python benchmarks/fraud_drift_loop.py [--customers 2000]

    world ─▶ make models' fraud model (production v1, its drift reference: the world as it was)
      └─ prices x1.5 (the scenario) ─▶ events, shifted to end now ─▶ lake (the sink's own loop)
           ├─ live: the last --window transactions, vectors point in time, scored by v1
           │    ─▶ the scorer's DriftMonitor ─▶ fraud_stream_drift_psi{column} ─▶ promtool:
           │       do ModelInputDrift / ModelScoreDrift (infra/prometheus/rules/drift.yml) fire?
           └─ make retrain-fraud --promote (delay protocol, gate) ─▶ v2, its reference: the lake
                ─▶ the same live rows scored by v2 ─▶ a new window ─▶ promtool again

1. production: train_fraud on the generated world (what `make models` registers), registered
   and promoted in a scratch repository;
2. the scenario (the transaction simulator's `prices_shifted`): the same world with every
   amount 50 % higher (a price or currency change that
   happened before the lake's history starts: prices were lower when production was trained).
   Its transactions and the fraud labels that had arrived by `as_of`, moved by whole weeks to
   end in the last week (services/seeder/history.py's events), go into a scratch lake through
   the lake sink's loop (services/lake/replay.py);
3. live: the lake's last --window transactions as the stream scorer meets them: their vectors
   are the trainer's point-in-time features over the lake (held equal to the online path's by
   tests/integration/lake/test_lake_training_parity.py), scored by the production ONNX graph, fed to
   the scorer's own DriftMonitor (services/common/drift_monitor.py), gauges read from its
   registry. Not the running stack: the same code on the same rows, in one process;
4. the alert: each gauge's value held for 40 minutes as promtool input series against the
   shipped rules; the expected alerts (PSI > 0.25, the weekend flag aside, as the rules say) are
   written into the test, so promtool passing means the rules fire exactly on those;
5. the retrain: services/trainer/fraud_retrain.py on the lake, promoted if it passes the gate;
   the same live rows scored by the new version into its own window; promtool again.
The control: steps 3-4 on the world as generated (no shift), the false-alarm check.

Writes benchmarks/results/fraud_drift_loop.json (date, machine, load, versions, rows, PSI per
column before and after, the gate's verdict, promtool's outcome, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import sklearn

from services.common.drift import SCORE
from services.common.drift_monitor import DriftMonitor
from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.common.telemetry import Metrics
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.devstack.servers import REPO_ROOT
from services.lake.replay import write_to_lake
from services.seeder.history import transaction_messages
from services.trainer.fraud import train_fraud
from services.trainer.fraud_features import fraud_feature_matrix
from services.trainer.fraud_retrain import (
    Windows,
    onnx_probabilities,
    retrain,
    summary,
    training_and_test,
)
from services.trainer.lake_sets import fraud_training_set
from services.trainer.pipeline import register
from services.trainer.worlds.transactions import (
    TransactionWorldConfig,
    generate_transactions,
    prices_shifted,
)

RULES = REPO_ROOT / "infra/prometheus/rules/drift.yml"
THRESHOLD = 0.25          # the rules' "> 0.25"
NOT_ALERTED = {SCORE, "tx_during_weekend"}  # ModelInputDrift leaves these out (drift.yml)
PRICE_FACTOR = 1.5
JOB = "fraud-stream"


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - started, 1)


def gauges(repository: ModelRepository, version: int, x: np.ndarray, window: int
           ) -> dict[str, float]:
    """The scorer's DriftMonitor fed these rows as `version` scores them; its gauges' values."""
    metrics = Metrics("fraud_stream")
    monitor = DriftMonitor(repository=repository, model_name="fraud",
                           feature_names=FRAUD_FEATURE_NAMES, metrics=metrics, window=window)
    scores = onnx_probabilities(repository.model_path("fraud", version), x)
    monitor.observe(version, x, scores)
    return {c: float(metrics.registry.get_sample_value("fraud_stream_drift_psi", {"column": c})
                     or math.nan) for c in (*FRAUD_FEATURE_NAMES, SCORE)}


def expected_alerts(psi: dict[str, float]) -> dict[str, list[str]]:
    return {"ModelInputDrift": sorted(c for c, v in psi.items()
                                      if c not in NOT_ALERTED and v > THRESHOLD),
            "ModelScoreDrift": [SCORE] if psi[SCORE] > THRESHOLD else []}


def promtool(psi: dict[str, float], workdir: Path, name: str,
             metric: str = "fraud_stream_drift_psi", job: str = JOB) -> dict[str, Any]:
    """The gauges held 40 minutes against the shipped rules; promtool checks that exactly the
    expected alerts fire at minute 45 (and none at 25, before the rules' `for: 30m`). Also the
    recommender's scenario's check (benchmarks/recs_drift_scenario.py: its metric and job)."""
    rounded = {c: round(v, 4) for c, v in psi.items()}
    expected = expected_alerts(rounded)
    series = [{"series": f'{metric}{{job="{job}", column="{c}"}}',
               "values": f"{v}x45"} for c, v in rounded.items()]

    def alerts(alert: str) -> list[dict[str, Any]]:
        found = []
        for column in expected[alert]:
            value = f"{rounded[column]:.2f}"
            summary_text = (f"{job}: model input {column} has PSI {value} against its training "
                            "reference" if alert == "ModelInputDrift" else
                            f"{job}: the model's score has PSI {value} against its training "
                            "reference")
            labels = {"severity": "ticket", "job": job}
            if alert == "ModelInputDrift":
                labels["column"] = column
            found.append({"exp_labels": labels, "exp_annotations": {"summary": summary_text}})
        return found

    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "name": name, "interval": "1m", "input_series": series,
        "alert_rule_test": [
            *({"alertname": a, "eval_time": "25m", "exp_alerts": []} for a in expected),
            *({"alertname": a, "eval_time": "45m", "exp_alerts": alerts(a)} for a in expected),
        ]}]}
    path = workdir / f"{name}_test.yml"
    path.write_text(json.dumps(test, indent=1))  # YAML is a superset of JSON
    run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True,
                         text=True, check=False)
    return {"alerts": expected, "promtool_passed": run.returncode == 0,
            "promtool_output": (run.stdout + run.stderr).strip().splitlines()[-3:]}


def last_rows(frame: pd.DataFrame, window: int) -> np.ndarray:
    rows = frame.sort_values("tx_datetime", kind="stable").tail(window)
    return np.asarray(rows[list(FRAUD_FEATURE_NAMES)].to_numpy(np.float32), dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=72)
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/fraud_drift_loop.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-drift-loop-"))
    timings: dict[str, float] = {}
    repository = ModelRepository(workdir / "models")

    with timed(timings, "world and production model"):
        # 72 days: the retrain's training week (28 to 21 days before the end) lies past the
        # trainer's burn-in (37 days), so it trains on full windows, as live rows are.
        config = TransactionWorldConfig(n_customers=args.customers,
                                        n_terminals=2 * args.customers, n_days=args.days,
                                        seed=args.seed)
        world = generate_transactions(config)
        production = register(repository, train_fraud(world, workdir / "report",
                                                       progress=lambda _: None).model).version
    tx = world.transactions
    with timed(timings, "control: the world as it was"):
        features = pd.DataFrame(fraud_feature_matrix(tx), columns=list(FRAUD_FEATURE_NAMES),
                                index=tx.index)
        control_x = last_rows(pd.concat([tx[["tx_datetime"]], features], axis=1), args.window)
        control = gauges(repository, production, control_x, args.window)

    shifted = prices_shifted(tx, PRICE_FACTOR)
    # The history moves by whole weeks, so each transaction keeps its hour and weekday (the
    # night and weekend flags are inputs); `as_of` is a minute after its last transaction,
    # within the week before now.
    end = shifted["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    shift = timedelta(weeks=(datetime.now(UTC) - end) // timedelta(weeks=1))
    as_of = end + shift + timedelta(minutes=1)
    with timed(timings, "the shifted world into the lake"):
        # The seeder's shift: the history ends now, each fraud label once it has arrived.
        events = write_to_lake(workdir / "lake", transaction_messages(
            shifted, shift, as_of))
    with open_lake(workdir / "lake") as con:
        with timed(timings, "live window: features and production's gauges"):
            live_x = last_rows(fraud_training_set(con, as_of), args.window)
            before = gauges(repository, production, live_x, args.window)
        windows = Windows.ending_at(as_of)
        with timed(timings, "retrain: delay protocol, gate, register, promote"):
            train, test = training_and_test(con, windows)
            result = retrain(train, test, repository, windows, promote=True)
    with timed(timings, "live window: the new production's gauges"):
        now_serving = repository.production_version("fraud")
        assert now_serving is not None
        after = gauges(repository, now_serving, live_x, args.window)
    checks = {name: promtool(psi, workdir, name) for name, psi in
              (("control", control), ("shifted_before_retrain", before),
               ("shifted_after_retrain", after))}

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "machine": {"nproc": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "platform": platform.platform(), "scikit_learn": sklearn.__version__,
                    "onnxruntime": onnxruntime.__version__, "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg(),
                    "note": "2 cores shared with other jobs"},
        "scenario": {"customers": args.customers, "seed": args.seed, "days": config.n_days,
                     "transactions": len(tx), "price_factor": PRICE_FACTOR,
                     "lake_events": events, "window": args.window, "threshold": THRESHOLD},
        "production_version": production, "serving_after": now_serving,
        "retrain": json.loads(result.to_json()), "retrain_summary": summary(result),
        "psi": {"control": control, "shifted_before_retrain": before,
                "shifted_after_retrain": after},
        "over_threshold": {k: sorted(c for c, v in psi.items() if v > THRESHOLD)
                           for k, psi in (("control", control),
                                          ("shifted_before_retrain", before),
                                          ("shifted_after_retrain", after))},
        "alerts": checks, "timings_s": timings,
        "gate": asdict(result.verdict),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(summary(result))
    for name, check in checks.items():
        print(f"{name}: alerts {check['alerts']}, promtool "
              f"{'agrees' if check['promtool_passed'] else 'DISAGREES'}")
    print(f"result: {args.out}; scratch: {workdir}")
    return 0 if all(c["promtool_passed"] for c in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
