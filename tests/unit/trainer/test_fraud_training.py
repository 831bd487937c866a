"""Fraud training: the handbook protocol, its metrics, and the production model handed on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.trainer.fraud import train_fraud
from services.trainer.fraud_metrics import card_precision_at_k, decision_table
from services.trainer.fraud_protocol import Split
from services.trainer.fraud_report import FraudTrainingResult
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[FraudTrainingResult, Path]:
    world = generate_transactions(TransactionWorldConfig(n_customers=300, n_terminals=600,
                                                         n_days=40, seed=1))
    report_dir = tmp_path_factory.mktemp("reports")
    return train_fraud(world, report_dir, progress=lambda _: None), report_dir


def test_training_hands_on_a_fraud_model_over_the_catalog(
    trained: tuple[FraudTrainingResult, Path],
) -> None:
    model = trained[0].model
    assert model.name == "fraud"
    assert model.feature_names == FRAUD_FEATURE_NAMES
    assert model.estimator.n_features_in_ == len(FRAUD_FEATURE_NAMES)
    assert len(model.training_data_hash) == 64
    assert {"auc_roc", "average_precision", "card_precision_at_100"} <= set(model.metrics)
    assert 0.5 < model.metrics["auc_roc"] <= 1.0


def test_the_holdout_has_at_least_a_thousand_float32_rows_from_the_test_week(
    trained: tuple[FraudTrainingResult, Path],
) -> None:
    holdout = trained[0].model.holdout
    assert holdout.dtype == np.float32
    assert holdout.shape[0] >= 1000
    assert holdout.shape[1] == len(FRAUD_FEATURE_NAMES)


def test_training_writes_the_report_and_its_plots(
    trained: tuple[FraudTrainingResult, Path],
) -> None:
    report_dir = trained[1]
    page = (report_dir / "fraud.md").read_text()
    for plot in ("fraud-curves.png", "fraud-vs-handbook.png", "fraud-decisions.png"):
        assert (report_dir / "img" / plot).stat().st_size > 0
        assert f"img/{plot}" in page
    assert "0.871" in page  # the handbook's published logistic regression AUC, side by side


def test_every_system_is_evaluated_at_every_threshold(
    trained: tuple[FraudTrainingResult, Path],
) -> None:
    rows = {(r.system, r.threshold) for r in trained[0].decisions}
    assert rows == {(s, t) for s in ("rules", "ML", "rules + ML") for t in (0.3, 0.6, 0.8)}


def test_the_split_is_train_week_delay_week_test_week_at_the_end_of_the_world() -> None:
    config = TransactionWorldConfig()
    split = Split.at_end_of(config)
    assert split.train_start == pd.Timestamp("2018-07-25")  # the handbook's own training start
    assert split.test_start == pd.Timestamp("2018-08-08")


def test_the_test_set_drops_cards_whose_fraud_is_known_by_then() -> None:
    split = Split(pd.Timestamp("2018-07-25"))
    day = pd.Timedelta(days=1)
    tx = pd.DataFrame({
        "tx_datetime": [split.train_start + 2 * day,           # card1 fraud in the train week
                        split.train_start + 8 * day,           # card2 fraud in the delay week
                        split.test_start + 0.5 * day,          # card1: known, dropped
                        split.test_start + 0.5 * day,          # card2: not known yet (7 days)
                        split.test_start + 2.5 * day],         # card2: known by now, dropped
        "card_id": ["card1", "card2", "card1", "card2", "card2"],
        "is_fraud": [1, 1, 0, 1, 1],
    })
    assert split.test_mask(tx).tolist() == [False, False, False, True, False]
    assert split.train_mask(tx).tolist() == [True, False, False, False, False]


def test_card_precision_leaves_out_cards_found_on_earlier_days() -> None:
    days = ["d1", "d1", "d2", "d2", "d2"]
    cards = ["a", "b", "a", "b", "c"]
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.8, 0.99, 0.5, 0.4]
    # day 1: a is top and compromised (1/1); day 2: a is already blocked, b beats c (0/1)
    assert card_precision_at_k(days, cards, labels, scores, k=1) == 0.5


def test_card_precision_takes_a_cards_highest_score_of_the_day() -> None:
    days = ["d1"] * 3
    cards = ["a", "a", "b"]
    assert card_precision_at_k(days, cards, [0, 1, 0], [0.1, 0.9, 0.5], k=1) == 1.0


def test_decision_table_counts_precision_recall_and_false_positives() -> None:
    labels = np.array([1, 1, 0, 0, 0])
    risk = np.array([0.9, 0.4, 0.35, 0.1, 0.0])
    rows = {r.threshold: r for r in decision_table(labels, {"rules": risk})}
    assert rows[0.3].precision == pytest.approx(2 / 3)
    assert rows[0.3].recall == 1.0
    assert rows[0.3].false_positive_rate == pytest.approx(1 / 3)
    assert rows[0.8].precision == 1.0
    assert rows[0.8].recall == 0.5
