"""Training sets from what the system saw: the lake's events, point in time, for both models.

    python -m services.trainer.lake_sets [--as-of 2026-12-01T00:00:00Z] [--out .state/training]

The worlds under .state/worlds are generated; the lake (services/lake) holds what the platform
actually received. This reads the lake's `transactions` and `fraud-labels` with DuckDB and builds
the fraud training set as of an instant (default: now):

- only events that had happened by then (event time <= as of), each transaction once;
- a label counts only if it had arrived by then (its own event time): a later chargeback is
  not known, so no row is labelled with what the future said;
- features are the catalog's FRAUD_FEATURES computed by services/trainer/fraud_features.py, the
  same code the generated worlds go through, which is point in time by construction (a row sees
  the half-open windows before its transaction; terminal and merchant risk the labels of
  transactions older than the label delay, all of which have arrived by then);
- `label_final` says a row's label can no longer change: a fraud was reported, or the label
  delay passed without a report (the worlds' and the handbook's rule). Train on those rows.

The recommender's set is the lake's `watch-events` before the instant, as the interactions
frame a world has (event id, user, title, time, duration, completed): the trainer's
recs_models.state_at folds them exactly as it folds a generated world's.

tests/integration/lake/test_lake_training_parity.py holds both equal to what the online path serves
for the same events on the real Redis: the fraud vectors row by row, the ranker's features.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from services.common.lake.settings import LakeStoreSettings
from services.common.lake.sql import open_lake
from services.designs.model_features import FRAUD_FEATURE_NAMES, TERMINAL_RISK_DELAY_DAYS
from services.trainer.fraud_features import fraud_feature_matrix

logger = logging.getLogger(__name__)

LAKE_TRANSACTIONS = """
WITH tx AS (
    SELECT data->>'transaction_id' AS transaction_id,
           data->>'user_id' AS customer_id, data->>'card_id' AS card_id,
           data->>'terminal_id' AS terminal_id, data->>'merchant_id' AS merchant_id,
           data->>'merchant_category' AS merchant_category,
           (data->>'amount')::DOUBLE AS amount, data->>'currency' AS currency,
           data->>'transaction_type' AS transaction_type,
           (data->>'latitude')::DOUBLE AS latitude, (data->>'longitude')::DOUBLE AS longitude,
           data->>'device_id' AS device_id, data->>'ip_address' AS ip_address,
           data->>'timestamp' AS timestamp, time_ms
    FROM transactions WHERE time_ms <= $as_of
    QUALIFY row_number() OVER (PARTITION BY data->>'transaction_id'
                               ORDER BY time_ms, "partition", "offset") = 1
), known AS (
    SELECT data->>'transaction_id' AS transaction_id,
           arg_max((data->>'is_fraud')::BOOLEAN, time_ms) AS is_fraud
    FROM labels WHERE time_ms <= $as_of GROUP BY 1
)
SELECT tx.*, coalesce(known.is_fraud, false) AS is_fraud,
       known.is_fraud IS NOT NULL AS label_arrived
FROM tx LEFT JOIN known USING (transaction_id)
ORDER BY time_ms, transaction_id
"""


LAKE_WATCHES = """
SELECT event_id, data->>'user_id' AS user_id, data->>'content_id' AS content_id,
       time_ms, (data->>'watch_seconds')::BIGINT AS watch_seconds,
       (data->>'completed')::BOOLEAN AS completed
FROM watches WHERE type = 'watch' AND time_ms < $as_of
ORDER BY time_ms, event_id
"""


def lake_interactions(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pd.DataFrame:
    """The lake's watches strictly before `as_of` (the trainer's windows are half-open), in a
    world's interactions columns, oldest first."""
    frame = con.execute(LAKE_WATCHES, {"as_of": int(as_of.timestamp() * 1000)}).df()
    frame.insert(3, "timestamp", pd.to_datetime(frame.pop("time_ms"), unit="ms", utc=True)
                 .astype("datetime64[ns, UTC]"))
    return frame


def lake_transactions(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pd.DataFrame:
    """The lake's transactions up to `as_of` in the worlds' columns (tx_datetime: naive UTC, as
    the seeder reads a world's naive times), with the labels that had arrived by then."""
    as_of_ms = int(as_of.timestamp() * 1000)
    frame = con.execute(LAKE_TRANSACTIONS, {"as_of": as_of_ms}).df()
    when = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame["tx_datetime"] = when.dt.tz_localize(None).astype("datetime64[ns]")
    frame["is_fraud"] = frame["is_fraud"].astype("int8")
    return frame.drop(columns=["timestamp"])


def fraud_training_set(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pd.DataFrame:
    """One row per transaction: FRAUD_FEATURES (catalog order), the label known at `as_of` and
    whether it is final; ids and times to join or split on."""
    tx = lake_transactions(con, as_of)
    features = pd.DataFrame(fraud_feature_matrix(tx), columns=list(FRAUD_FEATURE_NAMES),
                            index=tx.index)
    settled = tx["tx_datetime"] < pd.Timestamp(as_of.astimezone(UTC).replace(tzinfo=None)) \
        - pd.Timedelta(days=TERMINAL_RISK_DELAY_DAYS)
    return pd.concat([
        tx[["transaction_id", "tx_datetime", "card_id", "customer_id"]], features,
        pd.DataFrame({"is_fraud": tx["is_fraud"],
                      "label_final": tx["label_arrived"] | settled.to_numpy()},
                     index=tx.index),
    ], axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.lake_sets",
                                     description=__doc__)
    parser.add_argument("--as-of", type=datetime.fromisoformat, default=None,
                        help="ISO 8601 instant with its zone (default: now)")
    parser.add_argument("--lake-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(".state/training"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    as_of = args.as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        parser.error("--as-of needs a zone, e.g. 2026-12-01T00:00:00+00:00")
    root = args.lake_root or LakeStoreSettings().lake_root
    with open_lake(root) as con:
        fraud = fraud_training_set(con, as_of)
        watches = lake_interactions(con, as_of)
    args.out.mkdir(parents=True, exist_ok=True)
    watches_path = args.out / "watches_from_lake.parquet"
    watches.to_parquet(watches_path, index=False)
    logger.info("recommender interactions as of %s: %d watches by %d users -> %s",
                as_of.isoformat(), len(watches), watches["user_id"].nunique(), watches_path)
    path = args.out / "fraud_from_lake.parquet"
    fraud.to_parquet(path, index=False)
    final = fraud[fraud["label_final"]]
    logger.info("fraud training set as of %s: %d transactions, %d with a final label "
                "(%d fraud) -> %s", as_of.isoformat(), len(fraud), len(final),
                int(final["is_fraud"].sum()), path)


if __name__ == "__main__":
    main()
