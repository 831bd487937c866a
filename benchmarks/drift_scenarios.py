"""PSI of the fraud model's inputs and score on the test week, as it is and under two drifts.

    make models
    .venv/bin/python benchmarks/drift_scenarios.py [--state .state] [--window 10000]

The production fraud version's drift reference (drift_reference.json, written by the trainer)
against the last --window transactions of the world's test week, as the fraud service's
DriftWindow would hold them (services/common/drift.py, the same code). Features are computed
by the trainer's fraud_feature_matrix over the whole world (history included), and scored by the
production ONNX model; a scenario changes the raw transactions of the test week first, then
recomputes every feature from them, so a shift reaches each feature the way it would online:

- as it is: the test week (the model never saw it), the alert's false-alarm check;
- prices x1.5: every amount of the test week 50 % higher (a currency or price change);
- card testing wave: 3 % (then 30 %) of the test week's cards each make 5 payments of 1-3 in the
  hour before their last payment of the week (a new fraud pattern, at two scales).

Writes benchmarks/results/drift_scenarios.json (date, machine, versions, rows, PSI per column).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd

from services.common.drift import (
    DRIFT_REFERENCE_FILE,
    MAJOR_SHIFT,
    SCORE,
    DriftReference,
    DriftWindow,
)
from services.common.models import LocalModelClient, ModelRepository
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.trainer.fraud_features import fraud_feature_matrix

RESULT = Path("benchmarks/results/drift_scenarios.json")


def prices_up(week: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return week.assign(amount=(week["amount"] * 1.5).round(2))


def card_testing_wave(share: float) -> Callable[[pd.DataFrame, np.random.Generator],
                                                pd.DataFrame]:
    def wave(week: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return _card_testing(week, rng, share)
    return wave


def _card_testing(week: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    cards = week["card_id"].unique()
    chosen = set(rng.choice(cards, size=max(1, int(share * len(cards))), replace=False))
    # Each chosen card's last payment of the week: the window holds the latest rows.
    anchors = week[week["card_id"].isin(chosen)].groupby("card_id").tail(1)
    probes = []
    for k in range(5):
        probe = anchors.copy()
        probe["transaction_id"] = probe["transaction_id"] + f"-probe{k}"
        probe["tx_datetime"] = probe["tx_datetime"] - pd.Timedelta(minutes=55 - 10 * k)
        probe["amount"] = rng.uniform(1.0, 3.0, len(probe)).round(2)
        probe["is_fraud"] = 1
        probes.append(probe)
    return pd.concat([week, *probes]).sort_values("tx_datetime", kind="stable")


SCENARIOS: dict[str, Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame] | None] = {
    "as it is (the test week)": None,
    "prices x1.5": prices_up,
    "card testing wave (3 % of cards)": card_testing_wave(0.03),
    "card testing wave (30 % of cards)": card_testing_wave(0.3),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path(".state"))
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    repository = ModelRepository(args.state / "models")
    version = repository.production_version("fraud")
    assert version is not None, "no production fraud model: run make models"
    reference = DriftReference.from_json(
        repository.extra_file("fraud", version, DRIFT_REFERENCE_FILE).read_text(),
        FRAUD_FEATURE_NAMES)
    frame = pd.read_parquet(args.state / "worlds/transactions/transactions.parquet")
    test_start = frame["tx_datetime"].max().normalize() - pd.Timedelta(days=6)
    history, week = frame[frame["tx_datetime"] < test_start], frame[frame["tx_datetime"] >=
                                                                   test_start]
    model = LocalModelClient(repository, reload_interval_s=None)
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {}
    for name, change in SCENARIOS.items():
        began = time.perf_counter()
        changed = week if change is None else change(week, rng)
        world = pd.concat([history, changed]).reset_index(drop=True)
        x = fraud_feature_matrix(world)[len(history):][-args.window:]
        scores = model.predict("fraud", np.asarray(x, dtype=np.float32)).outputs[
            "probabilities"][:, 1]
        window = DriftWindow(reference, size=args.window, min_rows=1)
        window.observe(x, scores)
        values = window.psi()
        inputs = {k: v for k, v in values.items() if k != SCORE}
        results[name] = {
            "rows": window.rows, "score_psi": round(values[SCORE], 4),
            "max_input_psi": round(max(inputs.values()), 4),
            "max_input": max(inputs, key=inputs.__getitem__),
            "inputs_over_threshold": sorted(k for k, v in inputs.items() if v > MAJOR_SHIFT),
            "mean_score": round(float(np.mean(scores)), 5),
            "psi": {k: round(v, 4) for k, v in values.items()},
            "seconds": round(time.perf_counter() - began, 1)}
        print(name, {k: results[name][k] for k in ("score_psi", "max_input_psi", "max_input",
                                                   "inputs_over_threshold")},
              {k: results[name]["psi"][k] for k in ("tx_amount", "card_nb_small_tx_1h")})
    model.close()
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "load_1m": round(os.getloadavg()[0], 2)},
        "versions": {"numpy": np.__version__, "pandas": pd.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "model": {"name": "fraud", "version": version, "reference_rows": reference.rows,
                  "reference": reference.description},
        "week_start": str(test_start.date()), "window": args.window, "threshold": MAJOR_SHIFT,
        "seed": args.seed, "scenarios": results,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
