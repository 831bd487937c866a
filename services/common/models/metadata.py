"""What a model version is: its tensors, the features it was trained on, and how it was made."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import onnx

from services.common.models.datatypes import BY_ONNX
from services.common.models.errors import InvalidModel

METADATA_FORMAT = 1
# Recorded with every version, so a result can be traced to the code that produced it.
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "protobuf")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the graph; -1 is a dimension of any size (usually the batch)."""

    name: str
    datatype: str  # protocol name: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["shape"]))

    @property
    def batched(self) -> bool:
        """True when the first dimension takes any number of rows."""
        return len(self.shape) >= 1 and self.shape[0] == -1


@dataclass(frozen=True)
class ModelMetadata:
    """metadata.json of one version, written once at registration and never changed."""

    name: str
    version: int
    description: str
    created_at: datetime
    feature_names: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metrics: Mapping[str, float]
    training_data_hash: str
    model_sha256: str
    producer: str  # who wrote the ONNX graph, e.g. "skl2onnx 1.20.0"
    opsets: Mapping[str, int]
    libraries: Mapping[str, str | None]
    extra_files: tuple[str, ...] = ()
    format: int = field(default=METADATA_FORMAT)

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        data = json.loads(text)
        return cls(
            name=data["name"],
            version=int(data["version"]),
            description=data["description"],
            created_at=datetime.fromisoformat(data["created_at"]),
            feature_names=tuple(data["feature_names"]),
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            metrics={k: float(v) for k, v in data["metrics"].items()},
            training_data_hash=data["training_data_hash"],
            model_sha256=data["model_sha256"],
            producer=data["producer"],
            opsets={k: int(v) for k, v in data["opsets"].items()},
            libraries=dict(data["libraries"]),
            extra_files=tuple(data.get("extra_files", ())),
            format=int(data.get("format", METADATA_FORMAT)),
        )

    @property
    def single_input(self) -> TensorSpec:
        """The input of a model that takes one feature matrix (every model the trainer makes)."""
        if len(self.inputs) != 1:
            names = ", ".join(t.name for t in self.inputs)
            raise InvalidModel(f"{self.name} v{self.version} has {len(self.inputs)} inputs "
                               f"({names}); a feature-matrix model has one")
        return self.inputs[0]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise InvalidModel(f"{value.name!r} is not a tensor (a sequence or map: ZipMap left on?)")
    if tensor.elem_type not in BY_ONNX:
        raise InvalidModel(f"{value.name!r} has ONNX element type {tensor.elem_type}, which the "
                           "protocol cannot carry")
    # A dimension named (dim_param) or unset is one the caller chooses: -1, as OIP and Triton say.
    shape = tuple(d.dim_value if d.WhichOneof("value") == "dim_value" else -1
                  for d in tensor.shape.dim)
    return TensorSpec(value.name, BY_ONNX[tensor.elem_type].oip, shape)


def graph_specs(model: onnx.ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's inputs (leaving out initializers some exporters list as inputs) and outputs."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(_spec(v) for v in model.graph.output)


def check_feature_names(feature_names: Sequence[str], inputs: Sequence[TensorSpec]) -> None:
    """The names must be unique and, for a one-matrix model, as many as the matrix's columns."""
    if len(set(feature_names)) != len(feature_names):
        raise InvalidModel("feature names must be unique")
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] != -1:
        columns = inputs[0].shape[1]
        if columns != len(feature_names):
            raise InvalidModel(f"the graph's input {inputs[0].name!r} has {columns} columns but "
                               f"{len(feature_names)} feature names were given")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that trained and exported the model (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
