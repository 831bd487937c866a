"""Tiny real ONNX models for tests and demos, built with onnx.helper (no scikit-learn needed).

`logistic_model` has the same interface as a skl2onnx classifier with ZipMap off: input
`features` float32 [N, F]; outputs `label` int64 [N] and `probabilities` float32 [N, 2], where
p(class 1) = sigmoid(rows @ weights + bias), so a test can compute the expected answer itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 9  # what ONNX Runtime 1.23 and Triton's onnxruntime backend both read


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="services.common.models.testing")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def logistic_model(weights: Sequence[float], bias: float = 0.0,
                   input_name: str = "features") -> bytes:
    """A binary classifier: p1 = sigmoid(x @ weights + bias), label = p1 > 0.5."""
    w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    constants = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([bias], dtype=np.float32), "b"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("MatMul", [input_name, "w"], ["score"]),
        helper.make_node("Add", ["score", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("Greater", ["p1", "half"], ["positive"]),
        helper.make_node("Cast", ["positive"], ["label_column"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["label_column", "axis1"], ["label"]),
    ]
    graph = helper.make_graph(
        nodes, "logistic",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, len(w)])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=constants)
    return _model(graph)


def expected_probability(rows: np.ndarray, weights: Sequence[float], bias: float = 0.0
                         ) -> np.ndarray:
    """What `logistic_model` answers for class 1, computed with numpy."""
    logits = rows.astype(np.float64) @ np.asarray(weights, dtype=np.float64) + bias
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


def identity_model(onnx_type: int, columns: int = 2, name: str = "values") -> bytes:
    """Returns its input: input `<name>` [N, columns] of the given ONNX element type, output
    `echo`. For protocol tests of every datatype (ONNX string tensors included)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], ["echo"])], "identity",
        [helper.make_tensor_value_info(name, onnx_type, [None, columns])],
        [helper.make_tensor_value_info("echo", onnx_type, [None, columns])])
    return _model(graph)
