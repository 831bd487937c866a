"""The Open Inference Protocol codec: JSON and binary tensors, both ways, and malformed bodies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from services.common.models import ProtocolError
from services.common.models.oip import (
    HEADER_LENGTH,
    InferenceCall,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

ARRAYS: dict[str, np.ndarray] = {
    "FP32": np.array([[1.5, -2.25], [3.0, 1e-7]], dtype=np.float32),
    "FP64": np.array([[1.5, -2.25], [3.0, 1e-300]], dtype=np.float64),
    "FP16": np.array([[1.5, -2.0]], dtype=np.float16),
    "INT64": np.array([[1, -(2**62)], [3, 4]], dtype=np.int64),
    "INT32": np.array([[7, -7]], dtype=np.int32),
    "INT8": np.array([[127, -128]], dtype=np.int8),
    "UINT8": np.array([[0, 255]], dtype=np.uint8),
    "UINT64": np.array([[0, 2**64 - 1]], dtype=np.uint64),
    "BOOL": np.array([[True, False]], dtype=np.bool_),
    "BYTES": np.array([["fraud", "légit"], ["", "a b"]], dtype=object),
}


def request(*inputs: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def tensor(data: Any, shape: list[int], datatype: str = "FP32", name: str = "x"
           ) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_every_datatype_round_trips_through_a_request(datatype: str, binary: bool) -> None:
    array = ARRAYS[datatype]
    body, headers = encode_request({"x": array}, binary=binary, request_id="r1")

    call = decode_request(body, headers.get(HEADER_LENGTH))

    assert call.id == "r1"
    assert call.inputs["x"].shape == array.shape
    assert call.inputs["x"].dtype == array.dtype
    assert np.array_equal(call.inputs["x"], array)
    assert (HEADER_LENGTH in headers) is binary


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ["FP32", "INT64", "BYTES", "BOOL"])
def test_every_datatype_round_trips_through_a_response(datatype: str, binary: bool) -> None:
    array = ARRAYS[datatype]
    body, headers = encode_response("fraud", 3, "r2", {"y": array}, lambda _: binary)

    result = decode_response(body, headers.get(HEADER_LENGTH))

    assert (result.model_name, result.model_version, result.id) == ("fraud", "3", "r2")
    assert np.array_equal(result.outputs["y"], array)
    assert result.outputs["y"].dtype == array.dtype


def test_json_data_is_sent_flat_in_row_major_order() -> None:
    body, _ = encode_request({"x": np.array([[1, 2], [3, 4]], dtype=np.float32)}, binary=False)
    assert json.loads(body)["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [2, 2],
                                             "data": [1.0, 2.0, 3.0, 4.0]}


def test_nested_json_data_is_accepted_and_read_row_major() -> None:
    call = decode_request(request(tensor([[1, 2, 3], [4, 5, 6]], [2, 3])))
    assert call.inputs["x"].tolist() == [[1, 2, 3], [4, 5, 6]]


def test_integers_are_accepted_in_float_tensors() -> None:
    call = decode_request(request(tensor([1, 2], [1, 2])))
    assert call.inputs["x"].dtype == np.float32


def test_binary_and_json_inputs_can_be_mixed_in_one_request() -> None:
    raw = np.array([[1, 2]], dtype=np.float32).tobytes()
    header = json.dumps({"inputs": [
        {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
        tensor([5, 6], [1, 2], name="b"),
    ]}).encode()
    call = decode_request(header + raw, str(len(header)))
    assert call.inputs["a"].tolist() == [[1, 2]]
    assert call.inputs["b"].tolist() == [[5, 6]]


def test_binary_bytes_elements_are_length_prefixed_utf8() -> None:
    body, headers = encode_request({"s": np.array([["é"]], dtype=object)})
    tail = body[int(headers[HEADER_LENGTH]):]
    assert tail == b"\x02\x00\x00\x00" + "é".encode()


def test_outputs_travel_binary_when_the_request_or_the_output_asks() -> None:
    every = decode_request(request(tensor([1], [1, 1]), parameters={"binary_data_output": True}))
    one = decode_request(request(tensor([1], [1, 1]), outputs=[
        {"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}]))
    override = decode_request(request(
        tensor([1], [1, 1]), parameters={"binary_data_output": True},
        outputs=[{"name": "label", "parameters": {"binary_data": False}}]))

    assert every.wants_binary("label") and every.wants_binary("probabilities")
    assert one.wants_binary("label") and not one.wants_binary("probabilities")
    assert one.outputs == ("label", "probabilities")
    assert not override.wants_binary("label")


def test_a_response_with_binary_outputs_says_where_the_json_ends() -> None:
    call = InferenceCall(None, {}, None, {}, True)
    body, headers = encode_response("m", 1, None, {"y": np.zeros((2, 2), np.float32)},
                                    call.wants_binary)
    header = json.loads(body[:int(headers[HEADER_LENGTH])])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert headers["Content-Type"] == "application/octet-stream"
    assert len(body) == int(headers[HEADER_LENGTH]) + 16


@pytest.mark.parametrize(("body", "header_length", "message"), [
    (b"{", None, "Invalid JSON"),
    (b"[]", None, "Input should be an object"),
    (b'{"inputs": []}', None, "at least 1 item"),
    (request({"name": "x", "shape": [1], "datatype": "FP32"}), None, "neither data nor"),
    (request(tensor([1, 2, 3], [2, 2])), None, r"shape \[2, 2\] needs 4 elements, data has 3"),
    (request(tensor([1, 2], [-1, 2])), None, "greater than or equal to 0"),
    (request(tensor(["a", "b"], [1, 2])), None, "FP32 data must be numbers"),
    (request(tensor([None, 1], [1, 2])), None, "FP32 data must be numbers"),
    (request(tensor([1.5, 2], [1, 2], "INT64")), None, "INT64 data must be numbers"),
    (request(tensor([None, 2], [1, 2], "INT64")), None, "INT64 data must be numbers"),
    (request(tensor([1, 0], [1, 2], "BOOL")), None, "BOOL data must be true/false"),
    (request(tensor([300, 1], [1, 2], "UINT8")), None, "does not fit UINT8"),
    (request(tensor([1, 2], [1, 2], "COMPLEX64")), None, "unknown datatype 'COMPLEX64'"),
    (request(tensor([1, 2], [1, 2], "BYTES")), None, "BYTES data must be strings"),
    (request(tensor([[1, 2], [3]], [2, 2])), None, "needs 4 elements, data has 3"),
    (request(tensor([1], [1, 1]), tensor([2], [1, 1])), None, "'x' is given twice"),
    (request(tensor([1], [1, 1]), outputs=[{"name": "y"}, {"name": "y"}]), None, "twice"),
    (request({"name": "x", "shape": [1], "datatype": "FP32",
              "parameters": {"shared_memory_region": "r"}}), None, "shared_memory_region"),
    (request(tensor([1], [1, 1]), outputs=[{"name": "y", "parameters": {"classification": 2}}]),
     None, "classification is not supported"),
    (request(tensor([1], [1, 1]), parameters={"binary_data_output": "yes"}), None,
     "must be true or false"),
    (request(tensor([1], [1, 1])), "9999", "body has"),
    (request(tensor([1], [1, 1])), "ten", "must be a number"),
    (request(tensor([1], [1, 1])) + b"tail", None, "Invalid JSON"),
])
def test_malformed_requests_are_protocol_errors_that_say_what_is_wrong(
        body: bytes, header_length: str | None, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_request(body, header_length)


def binary_request(size: int, raw: bytes, datatype: str = "FP32") -> tuple[bytes, str]:
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": datatype,
                                     "parameters": {"binary_data_size": size}}]}).encode()
    return header + raw, str(len(header))


@pytest.mark.parametrize(("size", "raw", "datatype", "message"), [
    (8, b"\x00" * 4, "FP32", "does not fit the 4 binary bytes"),
    (4, b"\x00" * 4, "FP32", "needs 8 bytes, got 4"),
    (8, b"\x00" * 12, "FP32", "4 binary bytes follow the header that no input claims"),
    (-1, b"", "FP32", "binary_data_size -1"),
    (3, b"\x05\x00\x00", "BYTES", "ends inside a length prefix"),
    (6, b"\x05\x00\x00\x00ab", "BYTES", "runs past the data"),
    (5, b"\x01\x00\x00\x00\xff", "BYTES", "must be UTF-8"),
    (5, b"\x01\x00\x00\x00a", "BYTES", r"needs 2 elements, data has 1"),
])
def test_malformed_binary_tensors_are_protocol_errors(size: int, raw: bytes, datatype: str,
                                                      message: str) -> None:
    body, header_length = binary_request(size, raw, datatype)
    with pytest.raises(ProtocolError, match=message):
        decode_request(body, header_length)
