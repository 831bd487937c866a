"""Production against its shadow challenger on the same transactions, as labels arrive (the lake).

    python -m services.trainer.fraud_shadow_report [--as-of ISO] [--out reports/shadow]

    fraud-decisions ──────────┐
    fraud-decisions-shadow ───┼─ joined by transaction id ─▶ agreement, action by action
    fraud-labels ─────────────┘   labelled as of now ─────▶ per model: AUC, AP of its score;
                                                              precision, recall per action

Only transactions both models decided count, each by its first decision on each topic. A
transaction is labelled once its label is final as of `as_of`: a fraud report arrived, or the
label delay passed without one (genuine); the rest count in the agreement, not in precision or
recall, and `labelled` says how far the labels have come.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from services.common.lake.settings import LakeStoreSettings
from services.common.lake.sql import open_lake
from services.designs.model_features import TERMINAL_RISK_DELAY_DAYS
from services.trainer.fraud_metrics import score

PAIRS = """
WITH first AS (
    SELECT 'production' AS model, * FROM decisions
    UNION ALL BY NAME
    SELECT 'shadow' AS model, * FROM shadow_decisions
), decided AS (
    SELECT model, data->>'transaction_id' AS transaction_id, data->>'card_id' AS card_id,
           (data->>'transaction_time')::TIMESTAMPTZ AS transaction_time,
           data->>'action' AS action, (data->>'ml_score')::DOUBLE AS ml_score,
           (data->>'model_version')::INTEGER AS model_version
    FROM first WHERE time_ms <= $as_of
    QUALIFY row_number() OVER (PARTITION BY model, data->>'transaction_id'
                               ORDER BY time_ms, "partition", "offset") = 1
), reported AS (
    SELECT data->>'transaction_id' AS transaction_id,
           arg_max((data->>'is_fraud')::BOOLEAN, time_ms) AS is_fraud
    FROM labels WHERE time_ms <= $as_of GROUP BY 1
)
SELECT p.transaction_id, p.card_id, p.transaction_time,
       p.action AS production_action, p.ml_score AS production_score,
       p.model_version AS production_version,
       s.action AS shadow_action, s.ml_score AS shadow_score, s.model_version AS shadow_version,
       r.is_fraud AS reported
FROM decided p JOIN decided s USING (transaction_id)
LEFT JOIN reported r USING (transaction_id)
WHERE p.model = 'production' AND s.model = 'shadow'
ORDER BY p.transaction_time, p.transaction_id
"""

ACTIONS = ("approve", "review", "decline")


@dataclass(frozen=True)
class ModelSide:
    """One model's record on the labelled pairs."""

    versions: list[int]
    auc_roc: float
    average_precision: float
    decline_precision: float
    decline_recall: float
    flagged_precision: float  # review or decline
    flagged_recall: float


@dataclass(frozen=True)
class ShadowReport:
    as_of: str
    pairs: int
    labelled: int
    frauds: int
    agreement: float
    actions: dict[str, dict[str, int]]  # production action -> shadow action -> count
    production: ModelSide | None        # None until a labelled pair holds both classes
    shadow: ModelSide | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float) + "\n"


def pairs(con: duckdb.DuckDBPyConnection, as_of: datetime,
          delay_days: int = TERMINAL_RISK_DELAY_DAYS) -> pd.DataFrame:
    """Both models' decisions per transaction, with the label final by `as_of` (or NA)."""
    frame = con.execute(PAIRS, {"as_of": int(as_of.timestamp() * 1000)}).df()
    settled = frame["transaction_time"] < pd.Timestamp(as_of) - pd.Timedelta(days=delay_days)
    # An arrived label is final (as lake_sets.py counts it); silence is final after the delay.
    reported = frame["reported"].astype("boolean")
    frame["is_fraud"] = reported.mask(reported.isna() & settled, False)
    return frame


def _side(frame: pd.DataFrame, prefix: str) -> ModelSide | None:
    labels = frame["is_fraud"].to_numpy(bool)
    if labels.all() or not labels.any():
        return None
    action = frame[f"{prefix}_action"]
    tx = pd.DataFrame({"tx_datetime": frame["transaction_time"].dt.tz_localize(None),
                       "card_id": frame["card_id"]})
    scores = score(tx, labels.astype(np.int8), frame[f"{prefix}_score"].to_numpy(np.float64))

    def precision_recall(flagged: np.ndarray) -> tuple[float, float]:
        caught = int((flagged & labels).sum())
        return (caught / int(flagged.sum()) if flagged.any() else float("nan"),
                caught / int(labels.sum()))

    decline = precision_recall((action == "decline").to_numpy())
    flagged = precision_recall(action.isin(("review", "decline")).to_numpy())
    return ModelSide(sorted(int(v) for v in frame[f"{prefix}_version"].dropna().unique()),
                     scores.auc_roc, scores.average_precision, *decline, *flagged)


def report(frame: pd.DataFrame, as_of: datetime) -> ShadowReport:
    labelled = frame[frame["is_fraud"].notna()]
    counts = pd.crosstab(frame["production_action"], frame["shadow_action"])
    actions = {p: {s: int(counts.at[p, s]) if p in counts.index and s in counts.columns else 0
                   for s in ACTIONS} for p in ACTIONS}
    agree = float((frame["production_action"] == frame["shadow_action"]).mean()) \
        if len(frame) else float("nan")
    return ShadowReport(as_of.isoformat(), len(frame), len(labelled),
                        int(labelled["is_fraud"].astype(bool).sum()), agree, actions,
                        _side(labelled, "production"), _side(labelled, "shadow"))


def summary(r: ShadowReport) -> str:
    if not r.pairs:
        return (f"as of {r.as_of}: no transaction decided by both models yet (is "
                "MLSD_FRAUD_SHADOW_VERSION set on the stream scorer, and the lake sink running?)")
    lines = [f"as of {r.as_of}: {r.pairs:,} transactions decided by both, {r.labelled:,} "
             f"labelled ({r.frauds} fraud); actions agree on {r.agreement:.1%}"]
    for name, side in (("production", r.production), ("shadow", r.shadow)):
        if side is None:
            lines.append(f"  {name:<10} - (no labelled pair of both classes yet)")
            continue
        lines.append(f"  {name:<10} v{','.join(map(str, side.versions))}: AUC "
                     f"{side.auc_roc:.3f}, AP {side.average_precision:.3f}; decline precision "
                     f"{side.decline_precision:.3f} recall {side.decline_recall:.3f}; review or "
                     f"decline precision {side.flagged_precision:.3f} recall "
                     f"{side.flagged_recall:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.fraud_shadow_report",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--as-of", type=datetime.fromisoformat, default=None)
    parser.add_argument("--lake-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/shadow/fraud-shadow.json"))
    args = parser.parse_args(argv)
    as_of = args.as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        parser.error("--as-of needs a zone, e.g. 2026-12-01T00:00:00+00:00")
    with open_lake(args.lake_root or LakeStoreSettings().lake_root) as con:
        result = report(pairs(con, as_of), as_of)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result.to_json())
    print(summary(result) + f"\nreport: {args.out}")  # noqa: T201  (a CLI prints its result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
