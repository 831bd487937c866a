"""MLServer serving ONNX: a custom runtime around ONNX Runtime, loaded by MLServer (peers venv).

MLServer ships no ONNX runtime on PyPI (its runtimes there: scikit-learn, XGBoost, LightGBM,
CatBoost, MLflow, Hugging Face, ...); a custom runtime, a subclass of `mlserver.MLModel`, is its
documented way to serve anything else. This is that subclass, as small as it can be, with the
session options our model server uses (one intra-op and one inter-op thread, sequential), so
the comparison with our server is MLServer's request path against ours on the same ONNX graph.
It imports nothing from the project: MLServer imports it from the model folder's settings
(`"implementation": "mlserver_onnx.OnnxRuntimeModel"`).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

OUTPUT = "probabilities"  # the exported classifiers' probability output (ZipMap off)


class OnnxRuntimeModel(MLModel):  # type: ignore[misc]  # MLServer's base class is untyped
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (probabilities,) = self._session.run([OUTPUT], {self._input: rows})
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output(OUTPUT, probabilities)])
