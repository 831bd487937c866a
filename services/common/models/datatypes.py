"""Tensor datatypes under their four names: Open Inference Protocol, numpy, ONNX and Triton."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto


@dataclass(frozen=True)
class DataType:
    oip: str          # the protocol's name, in requests and metadata: "FP32"
    numpy: np.dtype[Any]
    onnx: int         # onnx.TensorProto element type
    triton: str       # config.pbtxt data_type: "TYPE_FP32"

    @property
    def is_bytes(self) -> bool:
        return self.oip == "BYTES"


def _dt(oip: str, numpy_type: Any, onnx_type: int, triton: str) -> DataType:
    # Little-endian explicitly: the binary tensor extension is little-endian on every machine.
    return DataType(oip, np.dtype(numpy_type).newbyteorder("<"), onnx_type, triton)


DATATYPES: tuple[DataType, ...] = (
    _dt("BOOL", np.bool_, TensorProto.BOOL, "TYPE_BOOL"),
    _dt("UINT8", np.uint8, TensorProto.UINT8, "TYPE_UINT8"),
    _dt("UINT16", np.uint16, TensorProto.UINT16, "TYPE_UINT16"),
    _dt("UINT32", np.uint32, TensorProto.UINT32, "TYPE_UINT32"),
    _dt("UINT64", np.uint64, TensorProto.UINT64, "TYPE_UINT64"),
    _dt("INT8", np.int8, TensorProto.INT8, "TYPE_INT8"),
    _dt("INT16", np.int16, TensorProto.INT16, "TYPE_INT16"),
    _dt("INT32", np.int32, TensorProto.INT32, "TYPE_INT32"),
    _dt("INT64", np.int64, TensorProto.INT64, "TYPE_INT64"),
    _dt("FP16", np.float16, TensorProto.FLOAT16, "TYPE_FP16"),
    _dt("FP32", np.float32, TensorProto.FLOAT, "TYPE_FP32"),
    _dt("FP64", np.float64, TensorProto.DOUBLE, "TYPE_FP64"),
    # Strings travel as BYTES: UTF-8 text in JSON, length-prefixed bytes in binary.
    _dt("BYTES", np.object_, TensorProto.STRING, "TYPE_STRING"),
)

BY_OIP = {d.oip: d for d in DATATYPES}
BY_ONNX = {d.onnx: d for d in DATATYPES}


def by_oip(name: str) -> DataType:
    """The datatype of a protocol name; KeyError names the ones there are."""
    try:
        return BY_OIP[name]
    except KeyError:
        raise KeyError(f"unknown datatype {name!r}; one of {', '.join(BY_OIP)}") from None


def of_array(array: np.ndarray[Any, Any]) -> DataType:
    """The datatype of a numpy array (str and bytes arrays are BYTES)."""
    if array.dtype.kind in "OUS":
        return BY_OIP["BYTES"]
    for datatype in DATATYPES:
        if datatype.numpy == array.dtype:
            return datatype
    raise KeyError(f"no protocol datatype for numpy {array.dtype}")
