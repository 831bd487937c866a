"""The Open Inference Protocol (KServe v2 REST) on the wire, both ways, JSON and binary.

A body is a JSON header, optionally followed by raw tensor bytes (Triton's binary tensor data
extension, which `tritonclient.http` uses by default). The header's length travels in the
`Inference-Header-Content-Length` HTTP header; each binary tensor says its byte count in
`parameters.binary_data_size`, and the bytes follow the header in the order the tensors are
listed. JSON data is row-major; flat or nested lists are both accepted, flat ones are sent.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.models.datatypes import DataType, by_oip, of_array
from services.common.models.errors import ProtocolError

Array = npt.NDArray[Any]
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_DATA_SIZE = "binary_data_size"
BYTES_LENGTH = struct.Struct("<I")  # each BYTES element: a 4-byte little-endian length, then it
UNSUPPORTED_PARAMETERS = ("shared_memory_region", "classification")
JSON_CONTENT = "application/json"
BINARY_CONTENT = "application/octet-stream"

Dimension = Annotated[int, Field(ge=0)]
# numpy kinds a JSON list may parse to, per target kind: ints fit float tensors, not the reverse.
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


class _Wire(BaseModel):
    # Strict: a shape of "3" (a string) is a malformed request, not a number to guess at.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class WireTensor(_Wire):
    """$request_input and $response_output."""

    name: str
    shape: list[Dimension]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class WireRequestedOutput(_Wire):
    name: str
    parameters: dict[str, Any] | None = None


class WireInferenceRequest(_Wire):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[WireTensor] = Field(min_length=1)
    outputs: list[WireRequestedOutput] | None = None


class WireInferenceResponse(_Wire):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[WireTensor]


@dataclass(frozen=True)
class InferenceCall:
    """A decoded request: numpy inputs, which outputs, and how each output wants its data."""

    id: str | None
    inputs: dict[str, Array]
    outputs: tuple[str, ...] | None  # None: every output of the model
    binary_flags: Mapping[str, bool]  # an output's own parameters.binary_data
    binary_by_default: bool  # the request's parameters.binary_data_output

    def wants_binary(self, output: str) -> bool:
        return self.binary_flags.get(output, self.binary_by_default)


@dataclass(frozen=True)
class InferenceResult:
    """A decoded response."""

    model_name: str
    model_version: str | None
    id: str | None
    outputs: dict[str, Array]


# --- tensors ---------------------------------------------------------------------------------
def _count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(x, list) for x in data):
        return data  # the usual case: clients send flat row-major data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _numbers(name: str, flat: list[Any], datatype: DataType) -> Array:
    try:
        array = np.asarray(flat)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"input {name!r}: data is not a list of numbers") from exc
    target = datatype.numpy.kind
    if array.size == 0:
        return array.astype(datatype.numpy)
    if target in "iu" and array.dtype.kind not in "iu" and all(type(x) is int for x in flat):
        # numpy widens a mix like [0, 2**64 - 1] to float64: keep the Python ints exact.
        array = np.asarray(flat, dtype=object)
    elif array.dtype.kind not in _ACCEPTED_KINDS[target]:
        wanted = "true/false" if target == "b" else "numbers"
        raise ProtocolError(f"input {name!r}: {datatype.oip} data must be {wanted}, "
                            f"got {array.dtype}")
    if target in "iu":
        info = np.iinfo(datatype.numpy)
        if array.min() < info.min or array.max() > info.max:
            raise ProtocolError(f"input {name!r}: a value does not fit {datatype.oip}")
    return array.astype(datatype.numpy)


def tensor_from_json(name: str, datatype: DataType, shape: Sequence[int],
                     data: list[Any]) -> Array:
    flat = _flatten(data)
    if len(flat) != _count(shape):
        raise ProtocolError(f"input {name!r}: shape {list(shape)} needs {_count(shape)} "
                            f"elements, data has {len(flat)}")
    if datatype.is_bytes:
        if not all(isinstance(x, str) for x in flat):
            raise ProtocolError(f"input {name!r}: BYTES data must be strings")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        array = _numbers(name, flat, datatype)
    return array.reshape(shape)


def tensor_from_bytes(name: str, datatype: DataType, shape: Sequence[int],
                      raw: bytes | memoryview) -> Array:
    count = _count(shape)
    if not datatype.is_bytes:
        expected = count * datatype.numpy.itemsize
        if len(raw) != expected:
            raise ProtocolError(f"input {name!r}: shape {list(shape)} of {datatype.oip} needs "
                                f"{expected} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=datatype.numpy).reshape(shape)
    elements: list[str] = []
    offset = 0
    view = memoryview(raw)
    while offset < len(view):
        if offset + BYTES_LENGTH.size > len(view):
            raise ProtocolError(f"input {name!r}: BYTES data ends inside a length prefix")
        (length,) = BYTES_LENGTH.unpack_from(view, offset)
        offset += BYTES_LENGTH.size
        if offset + length > len(view):
            raise ProtocolError(f"input {name!r}: a BYTES element runs past the data")
        try:  # ONNX string tensors hold text
            elements.append(bytes(view[offset:offset + length]).decode())
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"input {name!r}: BYTES elements must be UTF-8") from exc
        offset += length
    if len(elements) != count:
        raise ProtocolError(f"input {name!r}: shape {list(shape)} needs {count} elements, "
                            f"data has {len(elements)}")
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array.reshape(shape)


def tensor_to_json(array: Array) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype.kind in "OSU":
        return [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in flat]
    return list(flat.tolist())


def tensor_to_bytes(array: Array, datatype: DataType) -> bytes:
    if not datatype.is_bytes:
        return np.ascontiguousarray(array, dtype=datatype.numpy).tobytes()
    parts = []
    for x in array.reshape(-1):
        encoded = x if isinstance(x, bytes) else str(x).encode()
        parts += [BYTES_LENGTH.pack(len(encoded)), encoded]
    return b"".join(parts)


# --- bodies ----------------------------------------------------------------------------------
def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail (empty when the body is all JSON)."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        size = int(header_length)
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH} must be a number, got {header_length!r}") from None
    if not 0 < size <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} is {size} but the body has {len(body)} bytes")
    return body[:size], memoryview(body)[size:]


def _parse(model: type[_Wire], header: bytes) -> Any:
    try:
        return model.model_validate_json(header)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ProtocolError(f"invalid {model.__name__.removeprefix('Wire')}: {problems}") from None


def _decode_tensors(tensors: Sequence[WireTensor], binary: memoryview,
                    kind: str) -> dict[str, Array]:
    decoded: dict[str, Array] = {}
    offset = 0
    for tensor in tensors:
        parameters = tensor.parameters or {}
        for unsupported in UNSUPPORTED_PARAMETERS:
            if unsupported in parameters:
                raise ProtocolError(f"{kind} {tensor.name!r}: {unsupported} is not supported")
        if tensor.name in decoded:
            raise ProtocolError(f"{kind} {tensor.name!r} is given twice")
        try:
            datatype = by_oip(tensor.datatype)
        except KeyError as exc:
            raise ProtocolError(f"{kind} {tensor.name!r}: {exc.args[0]}") from None
        size = parameters.get(BINARY_DATA_SIZE)
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise ProtocolError(f"{kind} {tensor.name!r}: {BINARY_DATA_SIZE} {size!r} does "
                                    f"not fit the {len(binary) - offset} binary bytes left")
            decoded[tensor.name] = tensor_from_bytes(
                tensor.name, datatype, tensor.shape, binary[offset:offset + size])
            offset += size
        elif tensor.data is not None:
            decoded[tensor.name] = tensor_from_json(tensor.name, datatype, tensor.shape,
                                                    tensor.data)
        else:
            raise ProtocolError(f"{kind} {tensor.name!r} has neither data nor {BINARY_DATA_SIZE}")
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} binary bytes follow the header that no "
                            f"{kind} claims")
    return decoded


def _flag(parameters: Mapping[str, Any] | None, key: str) -> bool | None:
    value = (parameters or {}).get(key)
    if value is not None and not isinstance(value, bool):
        raise ProtocolError(f"parameter {key} must be true or false")
    return value


def decode_request(body: bytes, header_length: str | None = None) -> InferenceCall:
    """An inference request body as numpy arrays; ProtocolError says what is malformed."""
    header, binary = split_body(body, header_length)
    request: WireInferenceRequest = _parse(WireInferenceRequest, header)
    inputs = _decode_tensors(request.inputs, binary, "input")
    outputs = None
    flags: dict[str, bool] = {}
    if request.outputs is not None:
        outputs = tuple(o.name for o in request.outputs)
        if len(set(outputs)) != len(outputs):
            raise ProtocolError("an output is requested twice")
        for output in request.outputs:
            for unsupported in UNSUPPORTED_PARAMETERS:
                if unsupported in (output.parameters or {}):
                    raise ProtocolError(f"output {output.name!r}: {unsupported} is not supported")
            flag = _flag(output.parameters, "binary_data")
            if flag is not None:
                flags[output.name] = flag
    default = bool(_flag(request.parameters, "binary_data_output"))
    return InferenceCall(request.id, inputs, outputs, flags, default)


def _encode(header: dict[str, Any], tensors: Sequence[tuple[dict[str, Any], bytes | None]],
            key: str) -> tuple[bytes, dict[str, str]]:
    header[key] = [t for t, _ in tensors]
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    tails = [raw for _, raw in tensors if raw is not None]
    if not tails:
        return header_bytes, {"Content-Type": JSON_CONTENT}
    return b"".join([header_bytes, *tails]), {"Content-Type": BINARY_CONTENT,
                                              HEADER_LENGTH: str(len(header_bytes))}


def _tensor(name: str, array: Array, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    try:
        datatype = of_array(array)
    except KeyError as exc:
        raise ProtocolError(f"tensor {name!r}: {exc.args[0]}") from None
    tensor: dict[str, Any] = {"name": name, "datatype": datatype.oip, "shape": list(array.shape)}
    if not binary:
        tensor["data"] = tensor_to_json(array)
        return tensor, None
    raw = tensor_to_bytes(array, datatype)
    tensor["parameters"] = {BINARY_DATA_SIZE: len(raw)}
    return tensor, raw


def encode_request(inputs: Mapping[str, Array], *, binary: bool = True,
                   outputs: Sequence[str] | None = None,
                   request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A request body and its HTTP headers; binary inputs and outputs when `binary`."""
    header: dict[str, Any] = {}
    if request_id is not None:
        header["id"] = request_id
    if binary:
        header["parameters"] = {"binary_data_output": True}
    if outputs is not None:
        header["outputs"] = [{"name": n, "parameters": {"binary_data": binary}} for n in outputs]
    return _encode(header, [_tensor(n, a, binary) for n, a in inputs.items()], "inputs")


def encode_response(model_name: str, model_version: int, request_id: str | None,
                    outputs: Mapping[str, Array],
                    binary: Callable[[str], bool]) -> tuple[bytes, dict[str, str]]:
    """A response body and its HTTP headers; `binary(name)` says how each output travels."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        header["id"] = request_id
    return _encode(header, [_tensor(n, a, binary(n)) for n, a in outputs.items()], "outputs")


def decode_response(body: bytes, header_length: str | None = None) -> InferenceResult:
    header, binary = split_body(body, header_length)
    response: WireInferenceResponse = _parse(WireInferenceResponse, header)
    outputs = _decode_tensors(response.outputs, binary, "output")
    return InferenceResult(response.model_name, response.model_version, response.id, outputs)
