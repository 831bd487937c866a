"""The model server's protocol routes: right answers, and a 4xx {"error"} for all else, no 5xx."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto

from services.common.models import ModelRepository
from services.common.models.oip import HEADER_LENGTH, decode_response, encode_request
from services.common.models.testing import expected_probability, identity_model, logistic_model
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings

FEATURES = ("amount", "velocity", "distance")
WEIGHTS = [0.3, -0.2, 0.1]
ROWS = np.random.default_rng(11).normal(size=(4, 3)).astype(np.float32)


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "models")
    for bias in (0.0, 2.0):
        repository.register("fraud", logistic_model(WEIGHTS, bias), feature_names=FEATURES,
                            metrics={"auc": 0.8}, training_data_hash="h1",
                            description=f"bias {bias}")
    repository.register("echo", identity_model(TensorProto.STRING), feature_names=("a", "b"),
                        metrics={}, training_data_hash="h2", description="strings back")
    return repository


@pytest.fixture
def client(repository: ModelRepository) -> Iterator[TestClient]:
    settings = ModelServerSettings(model_repository=repository.root,
                                   model_server_max_request_bytes=1_000_000)
    with TestClient(create_app(settings)) as client:
        yield client


def infer_body(rows: np.ndarray = ROWS, **fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}], **fields}


def test_liveness_and_readiness_answer_200(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}
    assert client.get("/v2/models/fraud/versions/2/ready").status_code == 200


def test_server_metadata_names_the_server_and_the_binary_tensor_extension(
        client: TestClient) -> None:
    body = client.get("/v2").json()
    assert body["name"] == "mlsd-modelserver"
    assert body["extensions"] == ["binary_tensor_data"]


def test_model_metadata_describes_the_production_version_and_lists_every_version(
        client: TestClient) -> None:
    body = client.get("/v2/models/fraud").json()
    assert body["name"] == "fraud"
    assert body["versions"] == ["1", "2"]
    assert body["platform"] == "onnxruntime_onnx"
    assert body["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    assert body["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert body["parameters"]["version"] == "1"
    assert body["parameters"]["feature_names"] == list(FEATURES)
    assert body["parameters"]["metrics"] == {"auc": 0.8}


def test_version_metadata_describes_that_version(client: TestClient) -> None:
    body = client.get("/v2/models/fraud/versions/2").json()
    assert body["parameters"]["version"] == "2"
    assert body["parameters"]["description"] == "bias 2.0"
    assert body["parameters"]["production_version"] == "1"


def test_a_json_inference_answers_every_output_flat_and_row_major_with_the_request_id(
        client: TestClient) -> None:
    response = client.post("/v2/models/fraud/infer", json=infer_body(id="req-1"))
    assert response.status_code == 200
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("fraud", "1", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probabilities"]["shape"] == [4, 2]
    assert outputs["probabilities"]["datatype"] == "FP32"
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(4, 2)
    np.testing.assert_allclose(probabilities[:, 1], expected_probability(ROWS, WEIGHTS),
                               rtol=1e-5)
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [4]


def test_a_batch_of_256_rows_is_answered_in_one_call(client: TestClient) -> None:
    rows = np.random.default_rng(1).normal(size=(256, 3)).astype(np.float32)
    body = client.post("/v2/models/fraud/infer", json=infer_body(rows)).json()
    assert {o["name"]: o["shape"] for o in body["outputs"]} == {"label": [256],
                                                                "probabilities": [256, 2]}


def test_an_explicit_version_answers_with_that_version(client: TestClient) -> None:
    body = client.post("/v2/models/fraud/versions/2/infer", json=infer_body()).json()
    assert body["model_version"] == "2"


def test_only_the_requested_outputs_are_returned(client: TestClient) -> None:
    body = client.post("/v2/models/fraud/infer",
                       json=infer_body(outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_a_binary_request_gets_binary_outputs_with_the_header_length(client: TestClient) -> None:
    content, headers = encode_request({"features": ROWS}, binary=True)
    response = client.post("/v2/models/fraud/infer", content=content, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    result = decode_response(response.content, response.headers[HEADER_LENGTH])
    np.testing.assert_allclose(result.outputs["probabilities"][:, 1],
                               expected_probability(ROWS, WEIGHTS), rtol=1e-5)


def test_bytes_tensors_travel_as_strings_in_json_and_length_prefixed_in_binary(
        client: TestClient) -> None:
    strings = np.array([["fraud", "légit"], ["", "b"]], dtype=object)
    json_body = {"inputs": [{"name": "values", "shape": [2, 2], "datatype": "BYTES",
                             "data": ["fraud", "légit", "", "b"]}]}
    answer = client.post("/v2/models/echo/infer", json=json_body).json()
    assert answer["outputs"][0] == {"name": "echo", "datatype": "BYTES", "shape": [2, 2],
                                    "data": ["fraud", "légit", "", "b"]}

    content, headers = encode_request({"values": strings}, binary=True)
    response = client.post("/v2/models/echo/infer", content=content, headers=headers)
    result = decode_response(response.content, response.headers[HEADER_LENGTH])
    assert result.outputs["echo"].tolist() == strings.tolist()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_is_accepted(client: TestClient, encoding: str) -> None:
    raw = json.dumps(infer_body()).encode()
    content = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    response = client.post("/v2/models/fraud/infer", content=content,
                           headers={"Content-Encoding": encoding})
    assert response.status_code == 200


def bad_input(**changes: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    return {"inputs": [{**tensor, **changes}]}


ERROR_CASES: list[tuple[str, str, str, Any, dict[str, str], int, str]] = [
    ("unknown model", "POST", "/v2/models/ranker/infer", bad_input(), {}, 404, "no model"),
    ("unknown version", "POST", "/v2/models/fraud/versions/9/infer", bad_input(), {}, 404,
     "no version 9"),
    ("version not a number", "POST", "/v2/models/fraud/versions/latest/infer", bad_input(), {},
     404, "no version 'latest'"),
    ("version with leading zero", "GET", "/v2/models/fraud/versions/01", None, {}, 404,
     "no version"),
    ("unknown model metadata", "GET", "/v2/models/ranker", None, {}, 404, "no model"),
    ("unknown model ready", "GET", "/v2/models/ranker/ready", None, {}, 404, "no model"),
    ("path traversal", "GET", "/v2/models/..%2F..%2Fetc", None, {}, 404, ""),
    ("not json", "POST", "/v2/models/fraud/infer", b"{inputs", {}, 400, "Invalid JSON"),
    ("empty body", "POST", "/v2/models/fraud/infer", b"", {}, 400, "Invalid"),
    ("json array", "POST", "/v2/models/fraud/infer", [], {}, 400, "should be an object"),
    ("no inputs", "POST", "/v2/models/fraud/infer", {"inputs": []}, {}, 400, "at least 1"),
    ("inputs not a list", "POST", "/v2/models/fraud/infer", {"inputs": "x"}, {}, 400,
     "inputs"),
    ("wrong input name", "POST", "/v2/models/fraud/infer", bad_input(name="rows"), {}, 400,
     "no input 'rows'"),
    ("wrong datatype", "POST", "/v2/models/fraud/infer", bad_input(datatype="FP64"), {}, 400,
     "the model takes FP32"),
    ("unknown datatype", "POST", "/v2/models/fraud/infer", bad_input(datatype="FLOAT"), {}, 400,
     "unknown datatype"),
    ("wrong shape", "POST", "/v2/models/fraud/infer",
     bad_input(shape=[1, 4], data=[1, 2, 3, 4]), {}, 400, "the model takes [-1, 3]"),
    ("wrong rank", "POST", "/v2/models/fraud/infer", bad_input(shape=[3]), {}, 400, "shape [3]"),
    ("data too short", "POST", "/v2/models/fraud/infer", bad_input(data=[1, 2]), {}, 400,
     "needs 3 elements, data has 2"),
    ("data not numbers", "POST", "/v2/models/fraud/infer", bad_input(data=["a", "b", "c"]), {},
     400, "must be numbers"),
    ("negative dimension", "POST", "/v2/models/fraud/infer", bad_input(shape=[-1, 3]), {}, 400,
     "greater than or equal to 0"),
    ("shape of strings", "POST", "/v2/models/fraud/infer", bad_input(shape=["1", "3"]), {}, 400,
     "shape"),
    ("unknown output", "POST", "/v2/models/fraud/infer",
     {**bad_input(), "outputs": [{"name": "score"}]}, {}, 400, "no output 'score'"),
    ("header length past the body", "POST", "/v2/models/fraud/infer", bad_input(),
     {HEADER_LENGTH: "100000"}, 400, "body has"),
    ("header length not a number", "POST", "/v2/models/fraud/infer", bad_input(),
     {HEADER_LENGTH: "many"}, 400, "must be a number"),
    ("unsupported encoding", "POST", "/v2/models/fraud/infer", bad_input(),
     {"Content-Encoding": "br"}, 415, "not supported"),
    ("broken gzip", "POST", "/v2/models/fraud/infer", b"not gzip",
     {"Content-Encoding": "gzip"}, 415, "not valid gzip"),
    ("unknown v2 path", "GET", "/v2/models/fraud/explain", None, {}, 404, "Not Found"),
    ("wrong method", "GET", "/v2/models/fraud/infer", None, {}, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "message"),
                         [case[1:] for case in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_every_malformed_request_gets_a_4xx_with_an_error_that_says_what_is_wrong(
        client: TestClient, method: str, path: str, body: Any, headers: dict[str, str],
        status: int, message: str) -> None:
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert message in response.json()["error"]


def test_a_body_over_the_size_limit_is_refused_before_it_is_parsed(client: TestClient) -> None:
    response = client.post("/v2/models/fraud/infer", content=b" " * 1_000_001)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_a_compressed_body_that_inflates_past_the_limit_is_refused(client: TestClient) -> None:
    response = client.post("/v2/models/fraud/infer", content=gzip.compress(b" " * 2_000_000),
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "dict":
        keys = ["inputs", "outputs", "name", "shape", "datatype", "data", "parameters", "id",
                "binary_data_size", "binary_data", "binary_data_output"]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    scalars: dict[str, Callable[[], Any]] = {
        "int": lambda: rng.randint(-(2**70), 2**70), "float": rng.random,
        "str": lambda: rng.choice(["FP32", "features", "BYTES", "", "é"]),
        "bool": lambda: rng.random() < 0.5, "null": lambda: None}
    return scalars[kind]()


def test_nothing_a_client_sends_gets_a_5xx(client: TestClient) -> None:
    rng = random.Random(20261121)
    for _ in range(400):
        body = random_json(rng)
        if rng.random() < 0.5:  # near-misses of a valid request reach deeper code
            body = bad_input(**{rng.choice(["shape", "datatype", "data", "name", "parameters"]):
                                random_json(rng)})
        headers = {HEADER_LENGTH: str(rng.randint(-5, 300))} if rng.random() < 0.2 else {}
        response = client.post("/v2/models/fraud/infer", content=json.dumps(body).encode(),
                               headers=headers)
        assert response.status_code < 500, (body, response.text)
        assert response.status_code == 200 or "error" in response.json()


def test_the_openapi_document_describes_the_protocol_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v2/models/{name}/versions/{version}/infer" in paths
    assert "requestBody" in paths["/v2/models/{name}/infer"]["post"]
