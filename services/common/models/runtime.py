"""One loaded model version: an ONNX Runtime session sized for a small CPU box, and its checks."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from services.common.models.datatypes import by_oip
from services.common.models.errors import (
    FeatureMismatch,
    InvalidInput,
    ModelUnavailable,
)
from services.common.models.metadata import ModelMetadata, TensorSpec

logger = logging.getLogger(__name__)

Array = npt.NDArray[Any]


def session_options() -> ort.SessionOptions:
    """One thread, sequential: on 2 shared cores, parallelism comes from more processes, and a
    thread pool per session would fight the web server and the other sessions for the cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    expected = "[" + ", ".join(str(d) for d in spec.shape) + "]"
    if len(shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)):
        raise InvalidInput(f"input {spec.name!r} has shape {list(shape)}; the model takes "
                           f"{expected} (-1: any size)")


def check_features(label: str, actual: Sequence[str], expected: Sequence[str]) -> None:
    """Raise FeatureMismatch unless `label` (e.g. "fraud v3") was trained on exactly the
    expected names, in the expected order."""
    if tuple(actual) == tuple(expected):
        return
    missing = [n for n in expected if n not in actual]
    unexpected = [n for n in actual if n not in expected]
    detail = (f"missing {missing}, unexpected {unexpected}" if missing or unexpected
              else "the same names in another order")
    raise FeatureMismatch(f"{label} was trained on other features than the catalog's: {detail}")


class OnnxModel:
    """A model version ready to run. Thread-safe: ONNX Runtime sessions allow concurrent runs."""

    def __init__(self, metadata: ModelMetadata, session: ort.InferenceSession,
                 load_seconds: float = 0.0) -> None:
        self.metadata = metadata
        self.session = session
        self.load_seconds = load_seconds
        self._inputs = {spec.name: spec for spec in metadata.inputs}
        self._outputs = [spec.name for spec in metadata.outputs]

    @classmethod
    def load(cls, path: Path, metadata: ModelMetadata) -> OnnxModel:
        """Load and warm up (one run on zeros) so the first real request pays nothing extra."""
        start = time.perf_counter()
        try:
            session = ort.InferenceSession(str(path), session_options(),
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's pybind errors are plain Exceptions
            raise ModelUnavailable(f"cannot load {metadata.name} v{metadata.version}: {exc}") \
                from exc
        model = cls(metadata, session)
        model._warm_up()
        model.load_seconds = time.perf_counter() - start
        return model

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> int:
        return self.metadata.version

    def check_features(self, expected: Sequence[str]) -> None:
        check_features(f"{self.name} v{self.version}", self.metadata.feature_names, expected)

    def run(self, inputs: Mapping[str, Array],
            output_names: Sequence[str] | None = None) -> dict[str, Array]:
        """Run one batch. Inputs are checked against the recorded specs first, so a caller's
        mistake is an InvalidInput that names the tensor, not an ONNX Runtime stack trace."""
        self._check_inputs(inputs)
        names = list(output_names) if output_names else self._outputs
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise InvalidInput(f"{self.name} has no output {unknown[0]!r}; it has "
                               f"{', '.join(self._outputs)}")
        try:
            results = self.session.run(names, dict(inputs))
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as exc:
            raise InvalidInput(f"{self.name} v{self.version} refused the input: {exc}") from exc
        except Exception as exc:  # a model that fails on valid input cannot answer
            raise ModelUnavailable(f"{self.name} v{self.version} failed: {exc}") from exc
        return dict(zip(names, results, strict=True))

    def predict(self, rows: Array) -> dict[str, Array]:
        """Every output for a matrix of feature rows (the model's one input)."""
        return self.run({self.metadata.single_input.name: rows})

    def _check_inputs(self, inputs: Mapping[str, Array]) -> None:
        for name in inputs:
            if name not in self._inputs:
                raise InvalidInput(f"{self.name} has no input {name!r}; it takes "
                                   f"{', '.join(self._inputs)}")
        for name, spec in self._inputs.items():
            if name not in inputs:
                raise InvalidInput(f"input {name!r} is missing")
            array = inputs[name]
            datatype = by_oip(spec.datatype)
            if array.dtype != datatype.numpy:
                raise InvalidInput(f"input {name!r} is {array.dtype}; the model takes "
                                   f"{spec.datatype} ({datatype.numpy})")
            _check_shape(spec, array.shape)

    def _warm_up(self) -> None:
        inputs = {}
        for spec in self.metadata.inputs:
            shape = [1 if d == -1 else d for d in spec.shape]
            datatype = by_oip(spec.datatype)
            inputs[spec.name] = (np.full(shape, "", dtype=object) if datatype.is_bytes
                                 else np.zeros(shape, dtype=datatype.numpy))
        self.session.run(None, inputs)
