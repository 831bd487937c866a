"""The numpy array types the code annotates with, one name per element type, defined once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]  # what models take: ONNX inputs are float32
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
