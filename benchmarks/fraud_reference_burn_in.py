"""Why promotion did not clear the drift alert: a retrain's reference from a young lake's truncated
windows, measured against the live vectors with and without the trainer's burn-in.

    .venv/bin/python benchmarks/fraud_reference_burn_in.py [--days 72 86]

`make shadow-run`'s scenario (fraud_lifecycle_stack.py: 1,000 customers, seed 0, prices x1.5,
moved by whole weeks to end now, phases cut at last - 21 d and last - 3 d) in one process, for
each world length:

    events ─▶ a scratch lake (the sink's own loop, services/lake/replay.py)
      ├─ retrain's rows: training_and_test as of the end of phase A (make retrain-fraud's code),
      │   with --burn-in-days 0 (before the fix) and the default burn-in (after)
      │   ─▶ DriftReference.of(training rows): the reference the challenger is stored with
      └─ live: phase C's transactions (the last 3 days), their point-in-time vectors (equal to
          the scorer's: tests/integration/lake/test_lake_training_parity.py)
          ─▶ DriftWindow against each reference ─▶ PSI per input (the scorer's gauges' code)

Writes benchmarks/results/fraud_reference_burn_in.json (date, machine, versions, rows, PSI).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import sklearn

from services.common.drift import DriftReference, DriftWindow
from services.common.lake.sql import open_lake
from services.common.machine import describe
from services.designs.model_features import FRAUD_FEATURE_NAMES, FRAUD_REACH_DAYS
from services.devstack.servers import REPO_ROOT
from services.lake.replay import write_to_lake
from services.seeder.history import transaction_messages
from services.trainer.fraud_retrain import NotEnoughData, Windows, training_and_test
from services.trainer.lake_sets import fraud_training_set
from services.trainer.worlds.transactions import (
    TransactionWorldConfig,
    generate_transactions,
    prices_shifted,
)

PRICE_FACTOR = 1.5
THRESHOLD = 0.25  # drift.yml's ModelInputDrift: PSI > 0.25
NOT_ALERTED = {"tx_during_weekend"}  # drift.yml leaves the weekend flag out


def live_psi(train_x: np.ndarray, live_x: np.ndarray) -> dict[str, float]:
    """Each input's PSI of the live rows against a reference built from the training rows, as
    the scorer's DriftMonitor computes it (the score column is not this script's question)."""
    reference = DriftReference.of(train_x, FRAUD_FEATURE_NAMES, np.zeros(len(train_x)))
    window = DriftWindow(reference, size=len(live_x))
    window.observe(live_x, np.zeros(len(live_x)))
    return {c: round(v, 4) for c, v in window.psi().items() if c in FRAUD_FEATURE_NAMES}


def scenario(days: int, customers: int, seed: int, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    config = TransactionWorldConfig(n_customers=customers, n_terminals=2 * customers,
                                    n_days=days, seed=seed)
    shifted = prices_shifted(generate_transactions(config).transactions, PRICE_FACTOR)
    end = shifted["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    now = datetime.now(UTC)
    shift = timedelta(weeks=(now - end) // timedelta(weeks=1))
    last = end + shift
    cut_a, cut_b = last - timedelta(days=21), last - timedelta(days=3)
    lake = workdir / f"lake-{days}"
    write_to_lake(lake, transaction_messages(shifted, shift, now))
    windows = Windows.ending_at(cut_a)
    out: dict[str, Any] = {"days": days, "cut_a": cut_a.isoformat(), "windows": windows.describe()}
    with open_lake(lake) as con:
        rows = fraud_training_set(con, now)
        live = rows[rows["tx_datetime"] > cut_b.replace(tzinfo=None)]
        live_x = live[list(FRAUD_FEATURE_NAMES)].to_numpy(np.float32)
        out["live_rows"] = len(live_x)
        out["lake_first_transaction"] = rows["tx_datetime"].min().isoformat()
        for name, burn_in in (("no_burn_in", 0), ("burn_in", FRAUD_REACH_DAYS)):
            try:
                train, _ = training_and_test(con, windows, burn_in)
            except NotEnoughData as exc:
                out[name] = {"burn_in_days": burn_in, "not_enough_data": str(exc)}
                continue
            psi = live_psi(train.x, live_x)
            out[name] = {"burn_in_days": burn_in, "train_rows": len(train.y),
                         "train_frauds": train.frauds, "burned_in": train.burned_in,
                         "over_threshold": sorted(c for c, v in psi.items()
                                                  if v > THRESHOLD and c not in NOT_ALERTED),
                         "psi": psi}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, nargs="+", default=[72, 86])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/fraud_reference_burn_in.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-burn-in-"))
    results = [scenario(d, args.customers, args.seed, workdir) for d in args.days]
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": describe(),
              "versions": {"scikit_learn": sklearn.__version__,
                           "onnxruntime": onnxruntime.__version__},
              "scenario": {"customers": args.customers, "seed": args.seed,
                           "price_factor": PRICE_FACTOR, "threshold": THRESHOLD,
                           "burn_in_days": FRAUD_REACH_DAYS,
                           "live": "phase C: the transactions after last - 3 d"},
              "worlds": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in results:
        for name in ("no_burn_in", "burn_in"):
            side = r[name]
            if "psi" not in side:
                print(f"{r['days']} d, {name}: {side['not_enough_data']}")
                continue
            worst = max((v, c) for c, v in side["psi"].items() if math.isfinite(v))
            print(f"{r['days']} d, {name}: {side['train_rows']:,} training rows "
                  f"({side['burned_in']:,} burned in); over {THRESHOLD}: "
                  f"{side['over_threshold']}; largest {worst[1]} {worst[0]:.3f}")
    print(f"result: {args.out}; scratch {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
