"""Retraining the fraud model from the lake: the label-delay protocol, vectors as served, and the
gate that registers a challenger only when it beats production on the same held-out week.

A generated world goes into a real Parquet lake through the sink's own loop (the seeder's events,
shifted to end at AS_OF); DuckDB reads it back as `make retrain-fraud` and `make models
SOURCE=lake` do: both run retrain_from_lake, the one path (tested here through both commands).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from services.common.bus import topics
from services.common.bus.ports import OutboundMessage
from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.common.lake.sql import open_lake
from services.common.models import ModelRepository
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.seeder.history import transaction_messages
from services.trainer.export import export_classifier
from services.trainer.fraud_metrics import Scores
from services.trainer.fraud_models import fit, gradient_boosting
from services.trainer.fraud_retrain import (
    GATE_FILE,
    Labelled,
    NotEnoughData,
    Windows,
    judge,
    retrain,
    retrain_from_lake,
    training_and_test,
    windows_complete_from,
)
from services.trainer.lake_sets import fraud_training_set
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions
from tests import lake_events as ev
from tests.harness import REPO_ROOT

AS_OF = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
# 68 days: the training week (28 to 21 days before AS_OF) lies past the burn-in (37 days).
WORLD = TransactionWorldConfig(n_customers=600, n_terminals=1_200, n_days=68, seed=1)
SERVED = [7.0] * len(FRAUD_FEATURE_NAMES)


@dataclass
class Lake:
    root: Path
    transactions: pd.DataFrame  # the world's, times shifted as the lake holds them
    served_id: str              # the transaction whose decision carries SERVED
    late_id: str                # a training-week transaction reported fraud after the test start


def served_decision(row: pd.Series) -> OutboundMessage:
    at = row.tx_datetime.to_pydatetime().replace(tzinfo=UTC)
    return ev.message(topics.FRAUD_DECISIONS, row.card_id, "fraud_decision", {
        "transaction_id": row.transaction_id, "card_id": row.card_id,
        "user_id": row.customer_id, "transaction_time": at.isoformat(),
        "amount": float(row.amount), "path": "stream", "risk_score": 0.1, "risk_level": "low",
        "action": "approve", "reason_codes": [], "rule_hits": [], "ml_score": 0.1,
        "model_version": 1, "policy_version": "p1", "degraded": [], "features": SERVED},
        at, f"decision-{row.transaction_id}")


def late_report(row: pd.Series, at: datetime) -> OutboundMessage:
    return ev.message(topics.FRAUD_LABELS, row.card_id, "fraud_label", {
        "transaction_id": row.transaction_id, "card_id": row.card_id,
        "terminal_id": row.terminal_id, "merchant_id": row.merchant_id,
        "transaction_time": row.tx_datetime.tz_localize(UTC).isoformat(), "is_fraud": True}, at,
        f"late-label-{row.transaction_id}")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    tx = generate_transactions(WORLD).transactions
    end = tx["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    shift = AS_OF - timedelta(hours=1) - end
    windows = Windows.ending_at(AS_OF)
    shifted = tx.assign(tx_datetime=tx["tx_datetime"] + shift,
                        label_time=tx["label_time"] + shift)
    in_train = shifted[windows.split.train_mask(shifted)]
    served = in_train.iloc[len(in_train) // 2]
    genuine = in_train[in_train["is_fraud"] == 0].iloc[10]
    root = tmp_path_factory.mktemp("lake")
    ev.fill_lake(root, [*transaction_messages(tx, shift, AS_OF), served_decision(served),
                        late_report(genuine, windows.labels_for_training_at + timedelta(days=1))])
    return Lake(root, shifted, str(served.transaction_id), str(genuine.transaction_id))


@pytest.fixture(scope="module")
def con(lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    with open_lake(lake.root) as connection:
        yield connection


@pytest.fixture(scope="module")
def sets(con: duckdb.DuckDBPyConnection) -> tuple[Labelled, Labelled]:
    return training_and_test(con, Windows.ending_at(AS_OF))


def test_the_test_week_ends_a_delay_before_now_and_training_a_delay_before_the_test() -> None:
    split = Windows.ending_at(AS_OF).split
    test_end = split.test_start + pd.Timedelta(days=split.test_days)
    assert test_end == pd.Timestamp("2026-11-23")  # the day of AS_OF, less the 7-day delay
    assert split.test_start - (split.train_start + pd.Timedelta(days=split.train_days)) \
        == pd.Timedelta(days=split.delay_days)


def test_training_knows_only_the_labels_that_had_arrived_by_the_test_start(
        lake: Lake, con: duckdb.DuckDBPyConnection, sets: tuple[Labelled, Labelled]) -> None:
    train, _ = sets
    truth = lake.transactions.set_index("transaction_id")
    late = train.frame["transaction_id"] == lake.late_id
    assert late.sum() == 1 and train.y[late.to_numpy()].tolist() == [0]  # reported too late
    others = ~late.to_numpy()
    assert (train.y[others] == truth.loc[train.frame["transaction_id"][others],
                                         "is_fraud"].to_numpy()).all()
    assert train.frauds > 0
    # The lake does know it now: a set as of now labels it fraud.
    now = fraud_training_set(con, AS_OF)
    assert now.loc[now["transaction_id"] == lake.late_id, "is_fraud"].tolist() == [1]


def test_the_test_week_is_labelled_with_every_final_label(
        lake: Lake, sets: tuple[Labelled, Labelled]) -> None:
    _, test = sets
    truth = lake.transactions.set_index("transaction_id")
    assert test.frauds > 0
    assert (test.y == truth.loc[test.frame["transaction_id"], "is_fraud"].to_numpy()).all()


def test_a_transaction_decided_by_the_stream_trains_on_the_vector_it_was_served(
        lake: Lake, sets: tuple[Labelled, Labelled]) -> None:
    train, _ = sets
    row = int(np.flatnonzero(train.frame["transaction_id"] == lake.served_id)[0])
    assert train.served == 1
    assert train.x[row].tolist() == SERVED
    assert train.x[row - 1].tolist() != SERVED  # the others: recomputed from the lake


def test_a_vector_is_complete_once_the_lake_holds_its_longest_reach_back() -> None:
    frame = pd.DataFrame({"tx_datetime": pd.to_datetime(["2026-10-05 12:00",
                                                         "2026-10-01 08:00"])})
    # terminal and merchant risk: 30 days ending 7 days ago
    assert windows_complete_from(frame) == pd.Timestamp("2026-11-07 08:00")
    assert windows_complete_from(frame, burn_in_days=3) == pd.Timestamp("2026-10-04 08:00")
    assert windows_complete_from(frame.iloc[:0]) is None


def burn_in_into_the_training_week(lake: Lake) -> tuple[int, pd.Timestamp]:
    """A burn-in (whole days) that ends two days into the training week, and where it ends."""
    first = lake.transactions["tx_datetime"].min()
    cut = Windows.ending_at(AS_OF).split.train_start + pd.Timedelta(days=2)
    days = math.ceil((cut - first) / pd.Timedelta(days=1))
    return days, first + pd.Timedelta(days=days)


def test_a_lake_older_than_the_burn_in_and_the_protocol_loses_no_row(
        sets: tuple[Labelled, Labelled]) -> None:
    assert [s.burned_in for s in sets] == [0, 0]


def test_rows_whose_windows_reach_before_the_lake_are_left_out_and_counted(
        lake: Lake, con: duckdb.DuckDBPyConnection, sets: tuple[Labelled, Labelled]) -> None:
    days, complete_from = burn_in_into_the_training_week(lake)

    train, test = training_and_test(con, Windows.ending_at(AS_OF), burn_in_days=days)

    full_train, full_test = sets
    assert 0 < train.burned_in < len(full_train.y)
    assert len(train.y) + train.burned_in == len(full_train.y)
    assert train.frame["tx_datetime"].min() >= complete_from
    assert set(full_train.frame.loc[full_train.frame["tx_datetime"] < complete_from,
                                    "transaction_id"]).isdisjoint(train.frame["transaction_id"])
    assert test.burned_in == 0 and len(test.y) == len(full_test.y)  # past the burn-in


def test_the_challengers_drift_reference_is_built_from_complete_windows_only(
        lake: Lake, con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    days, _ = burn_in_into_the_training_week(lake)
    train, test = training_and_test(con, Windows.ending_at(AS_OF), burn_in_days=days)
    repository = ModelRepository(tmp_path / "models")

    result = retrain(train, test, repository, Windows.ending_at(AS_OF))

    assert result.registered is not None
    assert result.burned_in == {"train": train.burned_in, "test": 0}
    stored = repository.extra_file("fraud", result.registered, DRIFT_REFERENCE_FILE)
    reference = DriftReference.from_json(stored.read_text(), FRAUD_FEATURE_NAMES)
    assert reference.rows == len(train.y)
    assert json.loads(repository.extra_file("fraud", result.registered, GATE_FILE).read_text()
                      )["burned_in"]["train"] == train.burned_in


def test_a_lake_too_young_for_a_complete_training_week_trains_nothing_and_says_why(
        con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(NotEnoughData, match=r"train 0 rows .* the burn-in \(60 d .* left out"):
        training_and_test(con, Windows.ending_at(AS_OF), burn_in_days=60)


def scores(ap: float) -> Scores:
    return Scores(0.9, ap, 0.3)


def test_the_gate_keeps_production_on_a_tie_and_needs_more_than_the_minimum_gain() -> None:
    assert not judge(scores(0.60), scores(0.60), 0.0, (-0.005, 0.005)).passed
    assert judge(scores(0.61), scores(0.60), 0.0, (0.002, 0.018)).passed
    assert not judge(scores(0.61), scores(0.60), 0.02, (0.002, 0.018)).passed
    assert judge(scores(0.10), None, 0.0).passed  # nothing to regress from


def test_the_gate_registers_a_gain_within_noise_only_if_it_cannot_be_worse_past_the_margin(
        ) -> None:
    within = judge(scores(0.794), scores(0.790), 0.0, (-0.006, 0.014), margin=0.01)
    assert within.passed and "not better beyond noise" in within.reason
    could_lose = judge(scores(0.794), scores(0.790), 0.0, (-0.012, 0.020), margin=0.01)
    assert not could_lose.passed and "could be worse than production" in could_lose.reason
    assert judge(scores(0.80), scores(0.79), 0.0, (0.001, 0.02)).reason.endswith(
        "better beyond noise")
    # a point gain with no interval to judge it by is not enough
    assert not judge(scores(0.80), scores(0.79), 0.0, None).passed
    assert not judge(scores(0.80), scores(0.79), 0.0, (float("nan"), 0.1)).passed


def weak_production(repository: ModelRepository) -> int:
    """A model fitted on shuffled labels: a production model any honest challenger beats."""
    x = np.random.default_rng(0).normal(size=(2_000, len(FRAUD_FEATURE_NAMES))).astype(np.float32)
    y = np.random.default_rng(1).permutation(np.r_[np.ones(50), np.zeros(1_950)]).astype(np.int8)
    estimator = gradient_boosting(0)
    fit(estimator, x, y)
    return repository.register("fraud", export_classifier(estimator, len(FRAUD_FEATURE_NAMES)),
                               feature_names=FRAUD_FEATURE_NAMES, metrics={},
                               training_data_hash="0" * 64, description="weak")


def test_a_challenger_that_beats_production_is_registered_beside_it_with_its_verdict(
        lake: Lake, sets: tuple[Labelled, Labelled], tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    weak = weak_production(repository)

    result = retrain(*sets, repository, Windows.ending_at(AS_OF))

    assert result.verdict.passed and result.production_version == weak
    assert result.production is not None
    assert result.challenger.average_precision > result.production.average_precision + 0.2
    assert result.registered == weak + 1 and not result.promoted
    assert result.gain_interval is not None and result.gain_interval[0] > 0  # beyond noise
    assert "better beyond noise" in result.verdict.reason
    assert repository.production_version("fraud") == weak
    gate = json.loads(repository.extra_file("fraud", weak + 1, GATE_FILE).read_text())
    assert gate["verdict"]["passed"] and gate["production_version"] == weak
    assert gate["gain_interval"] == list(result.gain_interval)
    assert gate["gate"]["margin"] == 0.01 and gate["gate"]["resamples"] == 2000
    assert repository.extra_file("fraud", weak + 1, DRIFT_REFERENCE_FILE).exists()


def test_a_challenger_no_better_than_production_is_refused_and_nothing_is_registered(
        sets: tuple[Labelled, Labelled], tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    first = retrain(*sets, repository, Windows.ending_at(AS_OF))  # no production: registered
    assert first.registered == 1 and first.verdict.reason == "no production model to beat"

    again = retrain(*sets, repository, Windows.ending_at(AS_OF))  # the same model: a tie

    assert not again.verdict.passed and again.registered is None
    assert again.production == again.challenger
    assert again.gain_interval == (0.0, 0.0)   # paired: the same scores on every resample
    assert repository.versions("fraud") == [1]


def test_promote_makes_a_winning_challenger_production(
        lake: Lake, sets: tuple[Labelled, Labelled], tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    weak_production(repository)
    result = retrain(*sets, repository, Windows.ending_at(AS_OF), promote=True)
    assert result.promoted and repository.production_version("fraud") == result.registered


def test_a_lake_without_a_final_test_week_is_not_enough(
        con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(NotEnoughData, match="test 0 rows"):
        training_and_test(con, Windows.ending_at(AS_OF + timedelta(days=60)))


def test_an_empty_lake_trains_nothing_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(NotEnoughData, match="the gate needs"):
        retrain_from_lake(tmp_path / "lake", ModelRepository(tmp_path / "models"), AS_OF,
                          report=None)


def run_cli(args: list[str], lake: Lake, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLSD_LAKE_ROOT": str(lake.root),
           "MLSD_MODEL_REPOSITORY": str(tmp_path / "models"),
           "MLSD_WORLD_DIR": str(tmp_path / "worlds")}
    return subprocess.run([sys.executable, "-m", *args, "--as-of", AS_OF.isoformat()],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_make_models_source_lake_is_the_gated_retrain_and_promote_promotes_the_winner(
        lake: Lake, tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    weak = weak_production(repository)

    done = run_cli(["services.trainer", "--source", "lake", "--promote"], lake, tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[models] fraud: windows: train" in done.stdout and "gate: PASSED" in done.stdout
    assert repository.production_version("fraud") == weak + 1
    assert repository.extra_file("fraud", weak + 1, GATE_FILE).exists()
    training = pd.read_parquet(tmp_path / "training" / "fraud_from_lake.parquet")
    assert len(training) == len(lake.transactions)
    # This lake holds transactions only: the ranker says so instead of failing.
    assert "[models] ranker: not trained:" in done.stdout


def test_make_retrain_fraud_refuses_a_challenger_no_better_than_production(
        lake: Lake, tmp_path: Path) -> None:
    first = run_cli(["services.trainer.fraud_retrain", "--report", str(tmp_path / "1.json")],
                    lake, tmp_path)
    again = run_cli(["services.trainer.fraud_retrain", "--report", str(tmp_path / "2.json")],
                    lake, tmp_path)

    assert first.returncode == 0 and again.returncode == 0, again.stdout + again.stderr
    assert "burn-in: left out 0 training and 0 test rows" in first.stdout
    assert "gate: REFUSED" in again.stdout
    assert not json.loads((tmp_path / "2.json").read_text())["verdict"]["passed"]
    assert ModelRepository(tmp_path / "models").versions("fraud") == [1]
