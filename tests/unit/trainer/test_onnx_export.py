"""Export to ONNX keeps scikit-learn's probabilities; the parity check catches when it does not."""

import numpy as np
import onnx
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from services.trainer.export import ParityError, check_parity, export_classifier


def data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0.3).astype(int)
    return x, y


@pytest.mark.parametrize("estimator", [
    LogisticRegression(max_iter=500),
    HistGradientBoostingClassifier(max_iter=60, random_state=0),
])
def test_onnx_matches_scikit_learn_on_held_out_rows(estimator: object) -> None:
    x, y = data(0)
    estimator.fit(x[:2000], y[:2000])  # type: ignore[attr-defined]
    onnx_bytes = export_classifier(estimator, n_features=8)

    assert check_parity(estimator, onnx_bytes, x[2000:]) <= 1e-4


def test_the_export_has_named_float32_input_and_plain_probability_output() -> None:
    x, y = data(1)
    model = onnx.load_from_string(
        export_classifier(LogisticRegression().fit(x, y), n_features=8))
    assert [i.name for i in model.graph.input] == ["features"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]


def test_parity_fails_when_the_onnx_model_is_not_the_estimators() -> None:
    x, y = data(2)
    estimator = LogisticRegression().fit(x, y)
    stale = export_classifier(LogisticRegression().fit(x, 1 - y), n_features=8)
    with pytest.raises(ParityError, match="differs from scikit-learn"):
        check_parity(estimator, stale, x[:1000])


def test_parity_refuses_too_few_held_out_rows() -> None:
    x, y = data(3)
    estimator = LogisticRegression().fit(x, y)
    with pytest.raises(ParityError, match=">= 1000 held-out rows"):
        check_parity(estimator, export_classifier(estimator, 8), x[:999])
