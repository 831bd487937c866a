"""ONNX Runtime sessions: sized for 2 cores, equal to scikit-learn, clear about wrong inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from services.common.models import (
    FeatureMismatch,
    InvalidInput,
    ModelRepository,
    ModelUnavailable,
    OnnxModel,
)
from services.common.models.runtime import session_options
from services.common.models.testing import expected_probability, logistic_model
from services.designs.model_features import FRAUD_FEATURE_NAMES

WEIGHTS = [0.5, -1.0, 2.0]


def load(tmp_path: Path, onnx_bytes: bytes, features: tuple[str, ...] = ("a", "b", "c"),
         ) -> OnnxModel:
    repository = ModelRepository(tmp_path)
    version = repository.register("model", onnx_bytes, feature_names=features, metrics={},
                                  training_data_hash="h", description="d")
    return OnnxModel.load(repository.model_path("model", version),
                          repository.metadata("model", version))


@pytest.fixture
def model(tmp_path: Path) -> OnnxModel:
    return load(tmp_path, logistic_model(WEIGHTS, bias=0.25))


def test_sessions_use_one_thread_sequentially_with_every_graph_optimization() -> None:
    options = session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_onnx_probabilities_equal_scikit_learn_within_1e_6(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(2000, 3)).astype(np.float32)
    labels = (rows @ np.array(WEIGHTS, dtype=np.float32) > 0).astype(int)
    estimator = LogisticRegression().fit(rows, labels)
    onnx_bytes = to_onnx(estimator, rows[:1],
                         options={id(estimator): {"zipmap": False}}).SerializeToString()

    outputs = load(tmp_path, onnx_bytes).predict(rows)

    assert np.max(np.abs(outputs["probabilities"] - estimator.predict_proba(rows))) < 1e-6
    assert np.array_equal(outputs["label"], estimator.predict(rows))


def test_a_batch_of_rows_gets_one_answer_per_row(model: OnnxModel) -> None:
    rows = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    outputs = model.predict(rows)
    assert outputs["probabilities"].shape == (256, 2)
    np.testing.assert_allclose(outputs["probabilities"][:, 1],
                               expected_probability(rows, WEIGHTS, 0.25), rtol=1e-5)
    assert outputs["label"].shape == (256,)


def test_only_the_requested_outputs_are_returned(model: OnnxModel) -> None:
    outputs = model.run({"features": np.zeros((2, 3), np.float32)}, ["probabilities"])
    assert list(outputs) == ["probabilities"]


def test_an_empty_batch_gets_empty_outputs(model: OnnxModel) -> None:
    outputs = model.predict(np.zeros((0, 3), np.float32))
    assert outputs["probabilities"].shape == (0, 2)


@pytest.mark.parametrize(("inputs", "message"), [
    ({"features": np.zeros((2, 3), np.float64)}, "input 'features' is float64; the model takes "
                                                 "FP32"),
    ({"features": np.zeros((2, 4), np.float32)}, r"shape \[2, 4\]; the model takes \[-1, 3\]"),
    ({"features": np.zeros((3,), np.float32)}, r"shape \[3\]"),
    ({"rows": np.zeros((2, 3), np.float32)}, "no input 'rows'; it takes features"),
    ({}, "input 'features' is missing"),
])
def test_a_wrong_input_is_refused_with_a_message_that_names_the_tensor(
        model: OnnxModel, inputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        model.run(inputs)


def test_an_unknown_output_is_refused(model: OnnxModel) -> None:
    with pytest.raises(InvalidInput, match="no output 'score'; it has label, probabilities"):
        model.run({"features": np.zeros((1, 3), np.float32)}, ["score"])


def test_a_model_file_onnx_runtime_cannot_load_is_unavailable(tmp_path: Path) -> None:
    model = load(tmp_path, logistic_model(WEIGHTS))
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelUnavailable, match="cannot load model v1"):
        OnnxModel.load(path, model.metadata)


def test_a_model_trained_on_the_catalog_features_passes_the_catalog_check(
        tmp_path: Path) -> None:
    model = load(tmp_path, logistic_model([0.1] * len(FRAUD_FEATURE_NAMES)), FRAUD_FEATURE_NAMES)
    model.check_features(FRAUD_FEATURE_NAMES)


def test_the_same_features_in_another_order_fail_the_catalog_check(model: OnnxModel) -> None:
    with pytest.raises(FeatureMismatch, match="the same names in another order"):
        model.check_features(("b", "a", "c"))


def test_a_renamed_feature_fails_the_catalog_check_and_is_named(model: OnnxModel) -> None:
    with pytest.raises(FeatureMismatch, match=r"missing \['d'\], unexpected \['c'\]"):
        model.check_features(("a", "b", "d"))
