"""PSI against a training reference: the index, the reference, the live window and the gauges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.drift import (
    DRIFT_REFERENCE_FILE,
    SCORE,
    ColumnReference,
    DriftReference,
    DriftWindow,
    column_reference,
    psi,
)
from services.common.drift_monitor import DriftMonitor
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.common.telemetry import Metrics

NAMES = ("amount", "is_night", "count_1h")


def rows(n: int, seed: int, amount_mean: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.gamma(2.0, amount_mean / 2.0, n), rng.random(n) < 0.2,
                         rng.poisson(1.5, n)]).astype(np.float64)
    scores = 1 / (1 + np.exp(-(x[:, 0] - 100) / 20))
    return x, scores


def test_psi_is_zero_for_the_same_shares_and_large_for_a_moved_mass() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    assert psi([0.25] * 4, [0.1, 0.1, 0.4, 0.4]) == pytest.approx(0.3 * math.log(4), rel=1e-9)
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))  # empty bins: floored


def test_a_flag_gets_one_bin_per_value_and_a_continuous_column_ten() -> None:
    x, _ = rows(5000, 0)
    assert len(column_reference(x[:, 1]).shares) == 2
    assert len(column_reference(x[:, 0]).shares) == 10
    assert sum(column_reference(x[:, 2]).shares) == pytest.approx(1.0)


def test_rows_like_the_training_ones_are_stable_and_a_shifted_input_is_flagged() -> None:
    x, s = rows(20_000, 0)
    reference = DriftReference.of(x, NAMES, s)
    window = DriftWindow(reference, size=5000, min_rows=500)
    live, live_scores = rows(5000, 1)
    window.observe(live, live_scores)
    assert max(window.psi().values()) < 0.1
    shifted, shifted_scores = rows(5000, 2, amount_mean=120.0)   # a new, larger-ticket pattern
    window.observe(shifted, shifted_scores)
    values = window.psi()
    assert values["amount"] > 0.25 and values[SCORE] > 0.25
    assert values["is_night"] < 0.1 and values["count_1h"] < 0.1


def test_the_window_holds_only_the_last_rows_and_is_nan_until_it_has_enough() -> None:
    x, s = rows(20_000, 0)
    window = DriftWindow(DriftReference.of(x, NAMES, s), size=2000, min_rows=500)
    few, few_scores = rows(100, 3)
    window.observe(few, few_scores)
    assert all(math.isnan(v) for v in window.psi().values())
    shifted, shifted_scores = rows(2000, 4, amount_mean=120.0)
    window.observe(shifted, shifted_scores)
    assert window.psi()["amount"] > 0.25
    back, back_scores = rows(2000, 5)            # the shift passed: the window forgets it
    window.observe(back, back_scores)
    assert window.rows == 2000 and window.psi()["amount"] < 0.1


def test_a_reference_round_trips_and_refuses_another_models_columns() -> None:
    x, s = rows(5000, 0)
    reference = DriftReference.of(x, NAMES, s, description="test")
    again = DriftReference.from_json(reference.to_json(), NAMES)
    assert again == reference
    with pytest.raises(ValueError, match="not the model's"):
        DriftReference.from_json(reference.to_json(), ("amount", "other", "count_1h"))


def gauge(metrics: Metrics, column: str) -> float | None:
    return metrics.registry.get_sample_value("drifttest_drift_psi", {"column": column})


def test_the_monitor_publishes_each_columns_psi_for_the_version_that_answered(
        tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    x, s = rows(20_000, 0)
    with_reference = repo.register(
        "m", logistic_model([0.0] * 3), feature_names=NAMES, metrics={},
        training_data_hash="t", description="with",
        extra_files={DRIFT_REFERENCE_FILE: DriftReference.of(x, NAMES, s).to_json().encode()})
    without = repo.register("m", logistic_model([0.0] * 3), feature_names=NAMES, metrics={},
                            training_data_hash="t", description="an older model")
    metrics = Metrics("drifttest")
    monitor = DriftMonitor(repository=repo, model_name="m", feature_names=NAMES, metrics=metrics,
                           window=5000, min_rows=500)
    assert math.isnan(gauge(metrics, "amount") or 0.0) or gauge(metrics, "amount") is None

    shifted, shifted_scores = rows(5000, 2, amount_mean=120.0)
    monitor.observe(with_reference, shifted, shifted_scores)
    assert (gauge(metrics, "amount") or 0.0) > 0.25
    assert (gauge(metrics, "is_night") or 1.0) < 0.1
    assert metrics.registry.get_sample_value("drifttest_drift_window_rows") == 5000

    monitor.observe(without, shifted, shifted_scores)       # no reference: unmeasured, NaN
    assert math.isnan(gauge(metrics, "amount") or 0.0)


def test_a_monitor_keeps_a_few_random_rows_of_each_call_when_asked(tmp_path: Path) -> None:
    # a recommender request is ~200 rows of one user: the window must span many requests
    repo = ModelRepository(tmp_path)
    x, s = rows(5_000, 0)
    version = repo.register(
        "m", logistic_model([0.0] * 3), feature_names=NAMES, metrics={},
        training_data_hash="t", description="with",
        extra_files={DRIFT_REFERENCE_FILE: DriftReference.of(x, NAMES, s).to_json().encode()})
    metrics = Metrics("drifttest")
    monitor = DriftMonitor(repository=repo, model_name="m", feature_names=NAMES,
                           metrics=metrics, window=1_000, min_rows=10, rows_per_call=10)
    requests = [rows(200, seed) for seed in range(1, 31)]
    for request_x, request_s in requests:
        monitor.observe(version, request_x, request_s)
    monitor.publish_now()   # the 5 s throttle would leave the first call's gauges
    assert metrics.registry.get_sample_value("drifttest_drift_window_rows") == 300
    window = monitor._windows[version]
    assert window is not None and window.rows == 300
    assert (gauge(metrics, "amount") or 1.0) < 0.1    # the same population: no drift read


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(allow_infinity=True, allow_nan=True, width=32),
                         min_size=4, max_size=4), min_size=1, max_size=30))
def test_the_window_bins_a_batch_as_each_columns_searchsorted_would(
        rows: list[list[float]]) -> None:
    # columns with 0, 1, several edges (repeated values included), and the score's
    reference = DriftReference(
        ("none", "flag", "many"),
        (ColumnReference((), (1.0,)), ColumnReference((0.0,), (0.5, 0.5)),
         ColumnReference((-1.0, 0.0, 0.0, 2.5, 1e6), (0.2, 0.2, 0.0, 0.2, 0.2, 0.2)),
         ColumnReference((0.1, 0.5, 0.9), (0.25, 0.25, 0.25, 0.25))), rows=10)
    matrix = np.asarray(rows, dtype=np.float64)
    expected = np.column_stack([column.bins(matrix[:, j])
                                for j, column in enumerate(reference.columns)])
    assert (DriftWindow(reference, size=64).bins(matrix) == expected).all()
