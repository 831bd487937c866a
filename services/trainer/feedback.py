"""The feedback loop's training table: decisions as served, joined with the labels that came later.

    python -m services.trainer.feedback [--out .state/feedback/fraud.parquet]

Reads `fraud-decisions` (every decision with the feature vector the model saw) and
`fraud-labels` (confirmed fraud, chargebacks, cleared) from the beginning to their current end,
joins them by transaction id and writes one row per labelled decision: the FRAUD_FEATURES
columns, `is_fraud`, and what was decided with which model and policy. Training on the vectors
as served, not as recomputed offline, keeps any train/serve difference out of the next model;
decisions without a label yet are left for a later run (labels take days).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from services.common.bus.kafka_bus import records_to_end
from services.common.bus.topics import FRAUD_DECISIONS, FRAUD_LABELS
from services.common.kafka_access import KafkaTarget
from services.common.settings import PlatformSettings
from services.designs.model_features import FRAUD_FEATURE_NAMES

logger = logging.getLogger(__name__)


def read_topic(kafka: KafkaTarget, topic: str) -> Iterator[dict[str, Any]]:
    """Every event's `data` on the topic, from the beginning to the end it has now."""
    return (_data(record.value) for record in records_to_end(kafka, topic))


def _data(value: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(value or b"{}").get("data", {})
    except (ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def training_table(decisions: Iterator[dict[str, Any]],
                   labels: Iterator[dict[str, Any]]) -> pd.DataFrame:
    """One row per decision that has a label and a feature vector; the latest label wins."""
    truth = {d["transaction_id"]: bool(d["is_fraud"]) for d in labels
             if "transaction_id" in d and "is_fraud" in d}
    rows = []
    for d in decisions:
        features = d.get("features")
        label = truth.get(d.get("transaction_id", ""))
        if label is None or not features or len(features) != len(FRAUD_FEATURE_NAMES):
            continue
        rows.append({**dict(zip(FRAUD_FEATURE_NAMES, features, strict=True)),
                     "is_fraud": label, "transaction_id": d["transaction_id"],
                     "transaction_time": d.get("transaction_time"), "action": d.get("action"),
                     "ml_score": d.get("ml_score"), "model_version": d.get("model_version"),
                     "policy_version": d.get("policy_version")})
    columns = [*FRAUD_FEATURE_NAMES, "is_fraud", "transaction_id", "transaction_time",
               "action", "ml_score", "model_version", "policy_version"]
    # A decision published twice (at-least-once) is one row.
    return pd.DataFrame(rows, columns=columns).drop_duplicates("transaction_id", keep="last")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.feedback",
                                     description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".state/feedback/fraud.parquet"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kafka = PlatformSettings(service_name="trainer").kafka_access()  # its own Kafka user
    table = training_table(read_topic(kafka, FRAUD_DECISIONS), read_topic(kafka, FRAUD_LABELS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    logger.info("feedback table written: %d labelled decisions (%d fraud) -> %s",
                len(table), int(table["is_fraud"].sum()), args.out)


if __name__ == "__main__":
    main()
