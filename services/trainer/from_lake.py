"""`make models SOURCE=lake`: the fraud model trained on what the system saw, from the lake.

The lake's point-in-time training set (services/trainer/lake_sets.py) as of now: the rows whose
label is final, oldest 80 % to train, newest 20 % to evaluate (the future, as a deployed model
meets it). The estimator is the production one (hist gradient boosting, as make models trains
on the generated world); it is exported to ONNX, checked for parity like every model, and
registered as a new version of `fraud` *beside* the production version, not promoted: a model
trained on whatever the lake holds replaces production only after someone compared the two
(`python -m services.common.models promote fraud N`, docs/model-serving.md). A repository
without any fraud model promotes its first version, as it always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.designs.model_features import FRAUD_FEATURE_NAMES, FRAUD_REFERENCE_FILE
from services.trainer.artifacts import data_hash
from services.trainer.export import check_parity, export_classifier
from services.trainer.fraud import HANDBOOK_MODELS, reference_json
from services.trainer.lake_sets import fraud_training_set

MIN_ROWS = 2_000
MIN_FRAUD = 20
TEST_SHARE = 0.2


class NotEnoughData(ValueError):
    """The lake holds too few labelled transactions to train and evaluate on."""


@dataclass(frozen=True)
class LakeModel:
    version: int
    rows: int
    frauds: int
    metrics: dict[str, float]


def train_fraud_from_lake(root: Path, repository: ModelRepository, as_of: datetime,
                          seed: int = 0) -> LakeModel:
    """Train, evaluate, export and register (not promote) the fraud model from the lake."""
    with open_lake(root) as con:
        data = fraud_training_set(con, as_of)
    final = data[data["label_final"]].sort_values("tx_datetime", kind="stable")
    frauds = int(final["is_fraud"].sum())
    if len(final) < MIN_ROWS or frauds < MIN_FRAUD:
        raise NotEnoughData(f"{len(final)} transactions with a final label ({frauds} fraud) "
                            f"in the lake at {root}; training needs {MIN_ROWS} and {MIN_FRAUD}")
    cut = int(len(final) * (1 - TEST_SHARE))
    x = final[list(FRAUD_FEATURE_NAMES)].to_numpy(np.float32)
    y = final["is_fraud"].to_numpy(np.int8)
    estimator = HANDBOOK_MODELS["hist gradient boosting"](seed)
    with threadpool_limits(limits=1, user_api="openmp"):  # 2 shared cores: see trainer/fraud.py
        estimator.fit(x[:cut], y[:cut])
        probabilities = estimator.predict_proba(x[cut:])[:, 1]
    metrics = {"roc_auc": float(roc_auc_score(y[cut:], probabilities)),
               "average_precision": float(average_precision_score(y[cut:], probabilities)),
               "train_rows": float(cut), "test_rows": float(len(final) - cut)}
    onnx_bytes = export_classifier(estimator, n_features=len(FRAUD_FEATURE_NAMES))
    difference = check_parity(estimator, onnx_bytes, x[cut:])
    version = repository.register(
        "fraud", onnx_bytes, feature_names=FRAUD_FEATURE_NAMES,
        metrics=metrics | {"onnx_parity_max_abs_diff": difference},
        training_data_hash=data_hash(x[:cut], y[:cut]),
        description=(f"hist gradient boosting trained from the lake as of {as_of.isoformat()}: "
                     f"{cut} transactions, tested on the newest {len(final) - cut}"),
        extra_files={FRAUD_REFERENCE_FILE: reference_json(x[:cut], y[:cut]).encode()},
    )
    return LakeModel(version, len(final), frauds, metrics)
