"""What a training run hands to export and registration: a fitted model and what it was fit on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class TrainedModel:
    name: str                          # the model's name in the repository: "fraud", "ranker"
    estimator: Any                     # a fitted scikit-learn classifier
    feature_names: tuple[str, ...]     # the catalog's names, in the matrix's column order
    holdout: npt.NDArray[np.float32]   # >= 1,000 rows never trained on, for the ONNX parity test
    metrics: dict[str, float]          # headline offline metrics, recorded in the metadata
    training_data_hash: str
    description: str
    extra_files: dict[str, bytes] = field(default_factory=dict)  # stored beside model.onnx


def data_hash(*arrays: npt.NDArray[Any]) -> str:
    """sha256 over the arrays' bytes: which data a model was trained on."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
