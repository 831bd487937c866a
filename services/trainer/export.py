"""scikit-learn -> ONNX (float32, ZipMap off), checked against scikit-learn before registering."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

INPUT_NAME = "features"
# Opsets every ONNX Runtime since 1.14 and Triton's onnxruntime backend load.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
PARITY_TOLERANCE = 1e-4


class ParityError(AssertionError):
    """The ONNX model does not reproduce scikit-learn's probabilities within the tolerance."""


def export_classifier(estimator: Any, n_features: int) -> bytes:
    """A fitted classifier as ONNX: input `features` float32 [N, n_features]; outputs `label` and
    `probabilities` [N, classes] (ZipMap off, so probabilities are a plain tensor, not dicts)."""
    model = to_onnx(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return bytes(model.SerializeToString())


def max_probability_difference(estimator: Any, onnx_bytes: bytes,
                               rows: npt.NDArray[np.float32]) -> float:
    """max |p_onnx - p_sklearn| over every row and class."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_probabilities = session.run(["probabilities"], {INPUT_NAME: rows})[0]
    return float(np.max(np.abs(onnx_probabilities - estimator.predict_proba(rows))))


def check_parity(estimator: Any, onnx_bytes: bytes, holdout: npt.NDArray[np.float32],
                 min_rows: int = 1000) -> float:
    """Raise ParityError unless ONNX matches scikit-learn to 1e-4 on >= min_rows held-out rows."""
    if len(holdout) < min_rows:
        raise ParityError(f"parity needs >= {min_rows} held-out rows, got {len(holdout)}")
    difference = max_probability_difference(estimator, onnx_bytes, holdout.astype(np.float32))
    if difference > PARITY_TOLERANCE:
        raise ParityError(f"ONNX differs from scikit-learn by {difference:.2e} "
                          f"(tolerance {PARITY_TOLERANCE:.0e}) on {len(holdout)} rows")
    return difference
