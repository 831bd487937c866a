"""Side by side with what users would pick instead (Feast, MLServer, GrowthBook), in one run.

    make bench-peers          (installs the peers' virtualenvs, then runs this)
    .venv/bin/python benchmarks/peers/run.py [--quick] [--ids 1000000] [--step-seconds 4]

The peers run in their own virtualenvs under .cache/peers-venv/ (pinned in
benchmarks/peers/requirements-*.txt: Feast and MLServer pin conflicting dependencies, so each
has its own), as servers or as worker processes; our side runs here. One redis-server, started
for the run, holds both feature stores. Per family, in one run:

    features       Feast's get_online_features (SDK in process; its Python feature server over
                   HTTP) vs our RedisFeatureStore.read (in process; behind our service shell),
                   1 and 100 entities x 5 views x 10 features; floors: one redis-py pipeline
                   round trip carrying the same HMGETs, an empty FastAPI endpoint
    model serving  MLServer (scikit-learn runtime; ONNX Runtime as a custom runtime) vs our
                   model server, the fraud- and ranker-shaped models, tritonclient.http
                   requests of 1 and 256 rows; then open-loop fixed rates; floor: one ONNX
                   Runtime call in process, an empty FastAPI endpoint
    assignment     the GrowthBook Python SDK vs our assign() over 1,000,000 ids (plus non-ASCII
                   ids): variation per id compared (mismatches must be 0), time per assignment;
                   floor: the hash alone

In-process ways take turns in blocks, HTTP ways request by request, so machine noise hits all
alike. Writes benchmarks/results/peers.json (date, machine, versions, load, sample counts) and
reports/peers/ (summary.md, one plot per family). Exits 1 if an assignment mismatches or a
peer's answer differs from ours.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import aiohttp
import joblib
import numpy as np
import onnxruntime as ort
import redis
import report  # siblings: this folder is on sys.path when run as a script
import shapes
import tritonclient.http as triton
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from services.common.features import RedisFeatureStore
from services.common.features.definitions import row_key
from services.common.features.redis_store import TS_FIELD
from services.common.loopback import free_port
from services.common.machine import cpu_model
from services.common.models import ModelRepository
from services.common.models.runtime import session_options
from services.common.processes import stop_process
from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import ExperimentDefinition, load_definitions_file
from services.designs.experiments.hashing import v2_from_state
from services.designs.model_features import FRAUD_FEATURE_NAMES, RANKER_FEATURE_NAMES
from services.devstack.servers import start_redis
from services.trainer.export import export_classifier
from services.trainer.fraud_models import HANDBOOK_MODELS

logger = logging.getLogger("peers")
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
VENVS = REPO_ROOT / ".cache" / "peers-venv"
RESULT = REPO_ROOT / "benchmarks" / "results" / "peers.json"
BLOCKS = 6  # in-process ways alternate in this many blocks each
NON_ASCII_IDS = 10_000

OURS_MODEL_SERVER = "ours: model server"
SERVERS = (OURS_MODEL_SERVER, "MLServer: scikit-learn runtime", "MLServer: ONNX Runtime (custom)")
FLOOR_ORT, FLOOR_HTTP = "floor: ONNX Runtime call", "floor: empty FastAPI endpoint"


# --- measuring ------------------------------------------------------------------------------

def stats(samples_us: Sequence[float]) -> dict[str, float]:
    values = np.asarray(samples_us)
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "mean_us": round(float(values.mean()), 1), "samples": len(values),
            "per_s": round(1e6 / float(values.mean()), 1)}


def timed(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def in_blocks(ways: Mapping[str, Callable[[int], list[float]]], samples: int
              ) -> dict[str, dict[str, float]]:
    """Each way measures samples/BLOCKS at a time, the ways taking turns (order rotating)."""
    got: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    for block in range(BLOCKS):
        for name in order[block % len(order):] + order[:block % len(order)]:
            got[name] += ways[name](max(1, samples // BLOCKS))
    return {name: stats(values) for name, values in got.items()}


def round_robin(ways: Mapping[str, Callable[[], object]], samples: int
                ) -> dict[str, dict[str, float]]:
    """One request per way per round, the first way rotating."""
    got: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways.items())
    for i in range(samples):
        for name, call in order[i % len(order):] + order[:i % len(order)]:
            start = time.perf_counter_ns()
            call()
            got[name].append((time.perf_counter_ns() - start) / 1000)
    return {name: stats(values) for name, values in got.items()}


class Poster:
    """POST one fixed body over one kept-alive connection (http.client: the lightest client,
    so its own cost adds least and equally to every server)."""

    def __init__(self, url: str, path: str, body: bytes) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self._path, self._body = path, body
        self._headers = {"Content-Type": "application/json"}

    def __call__(self) -> bytes:
        self._connection.request("POST", self._path, self._body, self._headers)
        response = self._connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self._path}: HTTP {response.status}: {data[:300]!r}")
        return data


# --- servers --------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def wait_ready(server: Server, path: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            host, port = server.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=1)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{server.name} not ready at {path}:\n{tail}")


@contextmanager
def started(name: str, argv: Sequence[str], port: int, ready_path: str, workdir: Path,
            env: Mapping[str, str] | None = None, cwd: Path = REPO_ROOT) -> Iterator[Server]:
    log = workdir / f"{name.replace(' ', '_').replace(':', '')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), env={**os.environ, **(env or {})}, cwd=cwd,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server, ready_path)
        yield server
    finally:
        stop_process(process, 20)


def empty_endpoint(workdir: Path) -> Any:
    port = free_port()
    return started(FLOOR_HTTP, [sys.executable, str(HERE / "our_servers.py"), "empty",
                                "--port", str(port)], port, "/readyz", workdir)


# --- features -------------------------------------------------------------------------------

class FeastWorker:
    """feast_side.py in the Feast virtualenv, answering one JSON line per command."""

    def __init__(self, python: Path, repo: Path, redis_address: str, log: IO[bytes]) -> None:
        self._process = subprocess.Popen(
            [str(python), str(HERE / "feast_side.py"), "--repo", str(repo), "--redis",
             redis_address], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            text=True, cwd=repo.parent)
        ready = self._receive()
        if not ready.get("ready"):
            raise RuntimeError(f"feast_side did not start: {ready}")

    def _receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("feast_side exited; see features-feast.log")
        return cast("dict[str, Any]", json.loads(line))

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        return self._receive()

    def read(self, entities: int, samples: int) -> list[float]:
        answer = self.ask(cmd="read", entities=entities, samples=samples)
        expected = entities * shapes.VIEWS * shapes.FEATURES_PER_VIEW
        if answer["values_found"] != expected:
            raise RuntimeError(f"Feast found {answer['values_found']} of {expected} values")
        return cast("list[float]", answer["samples_us"])

    def close(self) -> None:
        assert self._process.stdin is not None  # end of input ends the worker
        self._process.stdin.close()
        self._process.wait(timeout=30)


def pipeline_floor(client: redis.Redis, entities: int) -> Callable[[], object]:
    """One redis-py pipeline round trip with our read's HMGETs; replies left undecoded."""
    catalog = shapes.catalog()
    commands = [(row_key(shapes.NAMESPACE, view.name, f"user{e}"),
                 [TS_FIELD, *(f.name for f in view.features)])
                for e in range(entities) for view in catalog]

    def call() -> object:
        pipe = client.pipeline(transaction=False)
        for key, fields in commands:
            pipe.hmget(key, fields)
        return pipe.execute()

    return call


def check_same_values(ours: RedisFeatureStore, feast: Poster, server: Poster) -> None:
    """Ours in process, ours over HTTP and Feast over HTTP return the same 50 values."""
    rows = ours.read(shapes.entity_rows(1), shapes.refs())
    expected = [rows[0].values[ref] for ref in shapes.refs()]
    if rows[0].missing:
        raise RuntimeError(f"our store is missing {rows[0].missing}")
    served = json.loads(server())["rows"][0]
    answer = json.loads(feast())
    # Feast names a column view__feature (full_feature_names) and orders columns its own way.
    by_name = dict(zip(answer["metadata"]["feature_names"],
                       (column["values"][0] for column in answer["results"]), strict=True))
    got = {"ours over HTTP": [served[ref] for ref in shapes.refs()],
           "Feast over HTTP": [by_name[ref.replace(":", "__")] for ref in shapes.refs()]}
    for name, values in got.items():
        if values != expected:
            raise RuntimeError(f"{name} returned {values}, ours in process {expected}")


def features_family(redis_url: str, workdir: Path, samples: Mapping[str, int]) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
    store = RedisFeatureStore(client, shapes.catalog(), namespace=shapes.NAMESPACE)
    shapes.seed(store, shapes.catalog())
    host_port = redis_url.removeprefix("redis://").split("/")[0]
    repo = workdir / "feast_repo"
    feast_python = VENVS / "feast" / "bin" / "python"
    cases = []
    with ExitStack() as stack:
        log = stack.enter_context((workdir / "features-feast.log").open("wb"))
        logger.info("features: Feast registers its views and writes the rows")
        feast = FeastWorker(feast_python, repo, host_port, log)
        stack.callback(feast.close)
        ours_port, feast_port = free_port(), free_port()
        ours_server = stack.enter_context(started(
            "ours: feature read service", [sys.executable, str(HERE / "our_servers.py"),
                                           "features", "--port", str(ours_port),
                                           "--redis-url", redis_url],
            ours_port, "/readyz", workdir))
        # One worker, as ours; --max-requests lifted, else gunicorn restarts the worker every
        # 1,000 requests (its default) and the restarts would land in Feast's tail.
        feast_server = stack.enter_context(started(
            "Feast: feature server", [str(VENVS / "feast" / "bin" / "feast"), "serve",
                                      "--host", "127.0.0.1", "--port", str(feast_port),
                                      "--no-access-log", "--workers", "1",
                                      "--max-requests", "100000000"],
            feast_port, "/health", workdir, cwd=repo))
        empty = stack.enter_context(empty_endpoint(workdir))
        for entities, n_inproc, n_http in ((1, samples["features_1_inproc"],
                                            samples["features_1_http"]),
                                           (shapes.ENTITIES, samples["features_100_inproc"],
                                            samples["features_100_http"])):
            rows, refs = shapes.entity_rows(entities), shapes.refs()
            body = json.dumps({"features": refs, "entities": {"user": [r["user"] for r in rows]},
                               "full_feature_names": True}).encode()
            posters = {"ours: service path (HTTP)": Poster(ours_server.url, "/get-online-features",
                                                           body),
                       "Feast: feature server (HTTP)": Poster(feast_server.url,
                                                              "/get-online-features", body),
                       FLOOR_HTTP: Poster(empty.url, "/get-online-features", body)}
            if entities == 1:
                check_same_values(store, posters["Feast: feature server (HTTP)"],
                                  posters["ours: service path (HTTP)"])
            floor = pipeline_floor(client, entities)
            name = f"{entities} entit{'y' if entities == 1 else 'ies'} x {len(refs)} features"
            logger.info("features: %s, in process", name)
            for _ in range(20):  # warm both sides' clients and caches
                store.read(rows, refs)
                floor()
            gc.collect()
            ways = in_blocks({
                "ours: RedisFeatureStore.read (in process)":
                    lambda n, rows=rows, refs=refs: timed(lambda: store.read(rows, refs), n),
                "Feast: get_online_features (in process)":
                    lambda n, entities=entities: feast.read(entities, n),
                "floor: one redis-py pipeline round trip": lambda n, f=floor: timed(f, n),
            }, n_inproc)
            logger.info("features: %s, over HTTP", name)
            round_robin(posters, 20)  # warm-up
            ways.update(round_robin(posters, n_http))
            cases.append({"name": name, "entities": entities, "ways": ways, "paths": {
                "in process": ("ours: RedisFeatureStore.read (in process)",
                               "Feast: get_online_features (in process)",
                               "floor: one redis-py pipeline round trip"),
                "over HTTP": ("ours: service path (HTTP)", "Feast: feature server (HTTP)",
                              FLOOR_HTTP)}})
        versions = feast.ask(cmd="versions")
    client.close()
    return {"cases": cases, "peer_versions": versions}


# --- model serving --------------------------------------------------------------------------

def train_models(seed: int = 7) -> dict[str, tuple[Any, int]]:
    """The production fraud model's estimator and the ranker's, fit on synthetic rows of their
    feature counts (their cost is their trees, not the data): the trainer keeps only ONNX."""
    rng = np.random.default_rng(seed)
    ranker = HistGradientBoostingClassifier(  # services/trainer/recs.py _fit_ranker, fixed size
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=100,
        l2_regularization=1.0, early_stopping=False, random_state=seed)
    models = {"fraud": (HANDBOOK_MODELS["hist gradient boosting"](seed), len(FRAUD_FEATURE_NAMES)),
              "ranker": (ranker, len(RANKER_FEATURE_NAMES))}
    for estimator, width in models.values():
        rows = rng.normal(size=(20_000, width)).astype(np.float32)
        signal = rows[:, 0] * rows[:, 1] + np.sin(rows[:, 2] * 3) + rows[:, 3:8].sum(axis=1) / 3
        labels = (signal + rng.normal(scale=0.5, size=len(rows)) > 0.8).astype(int)
        with threadpool_limits(limits=1):
            estimator.fit(rows, labels)
    return models


def mlserver_repository(root: Path, models: Mapping[str, tuple[Any, int]],
                        onnx: Mapping[str, bytes], ports: Sequence[int]) -> None:
    for name, (estimator, _) in models.items():
        for runtime, file, implementation in (
                ("sklearn", "model.joblib", "mlserver_sklearn.SKLearnModel"),
                ("onnx", "model.onnx", "mlserver_onnx.OnnxRuntimeModel")):
            folder = root / f"{name}-{runtime}"
            folder.mkdir(parents=True)
            if runtime == "sklearn":
                joblib.dump(estimator, folder / file)
            else:
                (folder / file).write_bytes(onnx[name])
            (folder / "model-settings.json").write_text(json.dumps({
                "name": f"{name}-{runtime}", "implementation": implementation,
                "parameters": {"uri": f"./{file}"}}))
    http_port, grpc_port, metrics_port = ports
    (root / "settings.json").write_text(json.dumps({
        "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port,
        "host": "127.0.0.1"}))


def target(server: str, model: str) -> tuple[str, str]:
    """(model name, probability output) of `model` on `server`."""
    if server == OURS_MODEL_SERVER:
        return model, "probabilities"
    if "scikit-learn" in server:
        return f"{model}-sklearn", "predict_proba"
    return f"{model}-onnx", "probabilities"


def triton_call(client: triton.InferenceServerClient, model: str, output: str,
                rows: np.ndarray) -> Callable[[], np.ndarray]:
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)  # MLServer has no binary tensors
    wanted = [triton.InferRequestedOutput(output, binary_data=False)]

    def call() -> np.ndarray:
        return cast("np.ndarray", client.infer(model, [tensor], outputs=wanted).as_numpy(output))

    return call


def request_body(rows: np.ndarray, output: str) -> bytes:
    """The bytes tritonclient.http sends for this request, for the open-loop driver."""
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    body, _ = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=[triton.InferRequestedOutput(output, binary_data=False)])
    return bytes(body)


WARMUP_S = 0.5  # each step starts with this long at its rate, unrecorded: connections open


async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> dict[str, Any]:
    """Evenly spaced requests at `rate`, each timed from when it was due (no coordinated
    omission: a request that waits behind a slow one carries the wait)."""
    due = [i / rate for i in range(int(rate * (WARMUP_S + seconds)))]
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=5.0)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1

        async def send(offset: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += offset >= WARMUP_S
                        return
            except (aiohttp.ClientError, TimeoutError):
                errors += offset >= WARMUP_S
                return
            if offset >= WARMUP_S:
                latencies.append((loop.time() - start - offset) * 1e6)

        await asyncio.gather(*(send(offset) for offset in due))
    result: dict[str, Any] = stats(latencies) if latencies else {"p50_us": None,
                                                                 "p99_us": None}
    recorded = sum(offset >= WARMUP_S for offset in due)
    return {**result, "rate": rate, "seconds": seconds, "sent": recorded, "errors": errors}


@dataclass(frozen=True)
class LoadCase:
    model: str
    rows: int
    fixed_rate: float
    steps: tuple[float, ...]
    budget_ms: float


LOAD_CASES = (LoadCase("fraud", 1, 200, (100, 200, 400, 800, 1600), 10.0),
              LoadCase("ranker", 256, 20, (10, 20, 40, 80, 160), 50.0))


def within(got: Mapping[str, Any], budget_ms: float) -> bool:
    return not got["errors"] and got["p99_us"] is not None and got["p99_us"] <= budget_ms * 1000


def load_family(urls: Mapping[str, str], data: Mapping[str, np.ndarray],
                step_seconds: float) -> list[dict[str, Any]]:
    """Per case: each server at the fixed rate, then the rates stepped up, the servers taking
    turns at each step (so a burst from elsewhere on the machine hits one step of one server,
    not one server's whole sweep); a server leaves the sweep after two steps over budget."""
    cases = []
    for case in LOAD_CASES:
        rows = data[case.model][:case.rows]
        targets = {}
        for server, url in urls.items():
            model, output = target(server, case.model)
            targets[server] = (f"{url}/v2/models/{model}/infer", request_body(rows, output))
        order = list(targets)
        fixed = {}
        for server in order:
            logger.info("load: %s, %d rows, %s at %g req/s", case.model, case.rows, server,
                        case.fixed_rate)
            fixed[server] = asyncio.run(open_loop(*targets[server], case.fixed_rate,
                                                  step_seconds * 2))
        steps: dict[str, list[dict[str, Any]]] = {server: [] for server in order}
        passed: dict[str, float | None] = dict.fromkeys(order)
        over = dict.fromkeys(order, 0)
        for k, step in enumerate(case.steps):
            for server in order[k % len(order):] + order[:k % len(order)]:
                if over[server] >= 2:
                    continue
                logger.info("load: %s, %d rows, step %g req/s, %s", case.model, case.rows,
                            step, server)
                got = asyncio.run(open_loop(*targets[server], step, step_seconds))
                steps[server].append(got)
                if within(got, case.budget_ms):
                    passed[server], over[server] = step, 0
                else:
                    over[server] += 1
        cases.append({"name": f"{case.model}, {case.rows} row{'s' if case.rows > 1 else ''}",
                      "fixed_rate": case.fixed_rate, "budget_ms": case.budget_ms,
                      "steps": list(case.steps), "servers": {
                          server: {"fixed": fixed[server], "steps": steps[server],
                                   "max_rate_within_budget": passed[server]}
                          for server in order}})
    return cases


def serving_family(workdir: Path, samples: Mapping[str, int], step_seconds: float
                   ) -> dict[str, Any]:
    logger.info("model serving: fitting the fraud- and ranker-shaped models")
    models = train_models()
    onnx = {name: export_classifier(estimator, width) for name, (estimator, width)
            in models.items()}
    rng = np.random.default_rng(11)
    data = {name: rng.normal(size=(256, width)).astype(np.float32)
            for name, (_, width) in models.items()}
    repository = ModelRepository(workdir / "ours-models")
    for name, blob in onnx.items():
        names = FRAUD_FEATURE_NAMES if name == "fraud" else RANKER_FEATURE_NAMES
        repository.register(name, blob, feature_names=names, metrics={},
                            training_data_hash="synthetic", description="bench-peers")
    ports = [free_port() for _ in range(4)]
    mlserver_repository(workdir / "mlserver", models, onnx, ports[1:])
    sessions = {name: ort.InferenceSession(blob, session_options(),
                                           providers=["CPUExecutionProvider"])
                for name, blob in onnx.items()}
    latency = []
    with ExitStack() as stack:
        ours = stack.enter_context(started(
            OURS_MODEL_SERVER, [sys.executable, "-m", "services.modelserver"], ports[0],
            "/readyz", workdir, env={"MLSD_MODEL_REPOSITORY": str(repository.root),
                                     "MLSD_MODEL_SERVER_PORT": str(ports[0]),
                                     "MLSD_LOG_LEVEL": "WARNING"}))
        mlserver = stack.enter_context(started(
            "MLServer", [str(VENVS / "mlserver" / "bin" / "mlserver"), "start",
                         str(workdir / "mlserver")], ports[1], "/v2/health/ready", workdir,
            # One OpenMP thread for scikit-learn, as ONNX Runtime has one intra-op thread in
            # every server here: on 2 shared cores its default pool spins and stalls requests
            # (our trainer measured 10x slower predictions); MLServer's docs leave it to users.
            env={"PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}))
        for name in models:
            for runtime in ("sklearn", "onnx"):
                wait_ready(mlserver, f"/v2/models/{name}-{runtime}/ready")
        empty = stack.enter_context(empty_endpoint(workdir))
        urls = {SERVERS[0]: ours.url, SERVERS[1]: mlserver.url, SERVERS[2]: mlserver.url}
        clients = {server: triton.InferenceServerClient(url.removeprefix("http://"))
                   for server, url in urls.items()}
        for model in models:
            for rows in (1, 256):
                batch = data[model][:rows]
                expected = sessions[model].run(["probabilities"], {"features": batch})[0]
                calls: dict[str, Callable[[], object]] = {}
                for server, client in clients.items():
                    name, output = target(server, model)
                    call = triton_call(client, name, output, batch)
                    if not np.allclose(call(), expected, atol=1e-4):
                        raise RuntimeError(f"{server} answers {model} differently from ours")
                    calls[server] = call
                calls[FLOOR_HTTP] = Poster(empty.url, "/v2/models/x/infer",
                                           request_body(batch, "probabilities"))
                session = sessions[model]
                calls[FLOOR_ORT] = lambda s=session, b=batch: s.run(["probabilities"],
                                                                   {"features": b})
                n = samples["serving_1"] if rows == 1 else samples["serving_256"]
                case = f"{model}, {rows} row{'s' if rows > 1 else ''}"
                logger.info("model serving: %s", case)
                round_robin(calls, 20)
                latency.append({"name": case, "model": model, "rows": rows,
                                "ways": round_robin(calls, n)})
        load = load_family(urls, data, step_seconds)
    return {"servers": list(SERVERS), "latency": latency, "load": load,
            "transport": "JSON tensors for every server (MLServer 1.7 refuses the binary "
                         "tensor extension)"}


# --- assignment -----------------------------------------------------------------------------

def experiments() -> dict[str, ExperimentDefinition]:
    """The experiments of benchmarks/experiments_assignment.py: the committed file's two, and
    two variants (hash v1; five variations at half coverage)."""
    file = load_definitions_file(REPO_ROOT / "config" / "experiments" / "experiments.toml")
    rec = next(d for d in file if d.key == "rec-algorithm")
    namespaced = next(d for d in file if d.namespace is not None)
    return {
        "rec-algorithm (hash v2, 2 variations)": rec,
        "hash v1, 2 variations": rec.model_copy(update={"key": "rec-algorithm-v1",
                                                        "hash_version": 1}),
        "namespace [0, 0.5) + coverage 0.2": namespaced.model_copy(
            update={"status": "running", "forced_variations": {}}),
        "5 variations, coverage 0.5": rec.model_copy(update={
            "key": "five-way", "coverage": 0.5,
            "variations": [{"name": f"v{i}", "weight": 0.2, "payload": {}} for i in range(5)]}),
    }


def growthbook_spec(definition: ExperimentDefinition) -> dict[str, Any]:
    namespace = definition.namespace
    return {"key": definition.key, "weights": [v.weight for v in definition.variations],
            "coverage": definition.coverage, "seed": definition.seed,
            "hashVersion": definition.hash_version,
            "namespace": None if namespace is None else [namespace.id, namespace.start,
                                                         namespace.end]}


BLOCK = 100_000  # ids per timed block, as growthbook_side.py: the median block is reported


def timed_blocks(ids: Sequence[str], call: Callable[[int], object]) -> list[float]:
    """Seconds per block of BLOCK ids; `call(i)` handles ids[i]."""
    blocks = []
    gc.collect()
    for first in range(0, len(ids), BLOCK):
        start = time.perf_counter()
        for i in range(first, min(first + BLOCK, len(ids))):
            call(i)
        blocks.append(time.perf_counter() - start)
    return blocks


def our_assignments(definition: ExperimentDefinition, ids: Sequence[str]
                    ) -> tuple[np.ndarray, list[float]]:
    index = {v.name: i for i, v in enumerate(definition.variations)}
    out = np.empty(len(ids), dtype=np.int8)

    def one(i: int) -> None:
        variation = assign(definition, ids[i]).variation
        out[i] = -1 if variation is None else index[variation]

    return out, timed_blocks(ids, one)


def hash_floor(definition: ExperimentDefinition, ids: Sequence[str]) -> list[float]:
    state = definition.seed_state
    return timed_blocks(ids, lambda i: v2_from_state(state, ids[i]))


def per_assignment_ns(block_seconds: Sequence[float], ids: int) -> float:
    """The median block's time per id (the last block may be short: full blocks only)."""
    full = block_seconds if ids % BLOCK == 0 or len(block_seconds) == 1 else block_seconds[:-1]
    size = min(BLOCK, ids)
    return round(float(np.median(full)) / size * 1e9, 1)


def growthbook_assignments(ids_file: Path, definition: ExperimentDefinition, workdir: Path
                           ) -> tuple[np.ndarray, dict[str, Any]]:
    spec, out = workdir / f"{definition.key}.spec.json", workdir / f"{definition.key}-gb"
    spec.write_text(json.dumps(growthbook_spec(definition)))
    subprocess.run([str(VENVS / "feast" / "bin" / "python"), str(HERE / "growthbook_side.py"),
                    str(ids_file), str(spec), str(out)], check=True)
    return np.load(out.with_suffix(".npy")), json.loads(out.with_suffix(".json").read_text())


def assignment_family(workdir: Path, n_ids: int) -> dict[str, Any]:
    ascii_ids = [f"u{i}" for i in range(n_ids)]
    # Beyond ASCII: Latin-1, CJK, and an emoji (two UTF-16 code units) in every third id.
    other = [f"{('zoë', '用户', '😀')[i % 3]}{i}" for i in range(NON_ASCII_IDS)]
    ids = ascii_ids + other
    ids_file = workdir / "ids.json"
    ids_file.write_text(json.dumps(ids))
    cases = []
    theirs: dict[str, Any] = {}
    for turn, (name, definition) in enumerate(experiments().items()):
        logger.info("assignment: %s, GrowthBook SDK and ours on %s ids", name, f"{len(ids):,}")
        # The two sides take turns going first, so neither always meets the same machine.
        if turn % 2 == 0:
            gb, theirs = growthbook_assignments(ids_file, definition, workdir)
            ours, blocks = our_assignments(definition, ids)
        else:
            ours, blocks = our_assignments(definition, ids)
            gb, theirs = growthbook_assignments(ids_file, definition, workdir)
        floor = hash_floor(definition, ascii_ids)
        differs = ours != gb
        cases.append({
            "name": name, "key": definition.key, "ids": n_ids,
            "non_ascii_ids": NON_ASCII_IDS,
            "mismatches": int(differs[:n_ids].sum()),
            "non_ascii_mismatches": int(differs[n_ids:].sum()),
            "in_experiment_share": round(float((ours >= 0).mean()), 4),
            "ours_ns": per_assignment_ns(blocks, len(ids)),
            "growthbook_ns": per_assignment_ns(theirs["block_seconds"], len(ids)),
            "floor_ns": per_assignment_ns(floor, n_ids)})
    return {"experiments": cases, "peer_versions": theirs["versions"],
            "how": "GrowthBook: one GrowthBook instance, set_attributes({'id': ...}) then "
                   "run(Experiment) per id; ours: assign(definition, id); floor: the id's hash "
                   "alone (v2_from_state). Single-threaded loops over every id in blocks of "
                   f"{BLOCK:,}; the median block's time per id; the sides take turns going "
                   "first, experiment by experiment"}


# --- the run --------------------------------------------------------------------------------

def venv_versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    output = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True,
                            text=True).stdout
    return cast("dict[str, str]", json.loads(output))


def versions() -> dict[str, dict[str, str]]:
    ours = {n: importlib.metadata.version(n) for n in (
        "redis", "hiredis", "fastapi", "uvicorn", "onnxruntime", "scikit-learn", "tritonclient",
        "aiohttp")}
    return {
        "ours (.venv)": ours,
        "Feast venv": venv_versions(VENVS / "feast" / "bin" / "python",
                                    ("feast", "growthbook", "redis", "fastapi", "uvicorn",
                                     "gunicorn")),
        "MLServer venv": venv_versions(VENVS / "mlserver" / "bin" / "python",
                                       ("mlserver", "mlserver-sklearn", "scikit-learn",
                                        "onnxruntime", "fastapi", "uvicorn", "uvloop")),
        "redis-server": {"redis-server": redis_server_version()},
    }


def redis_server_version() -> str:
    output = subprocess.run(["redis-server", "--version"], check=False, capture_output=True,
                            text=True).stdout
    return next((part.split("=")[1] for part in output.split() if part.startswith("v=")), output)


NOTES = [
    "Triton Inference Server itself cannot run here: it ships as NVIDIA's container image, "
    "which this machine cannot pull or run, and PyPI's `tritonserver` offers no installable "
    "build for it (pip finds only 0.0.1.dev0). tritonclient.http only sends the requests. "
    "NVIDIA's own figures (perf_analyzer) are context in docs/benchmarks.md, not a "
    "measurement here.",
    "The fraud and ranker models are the production estimators' classes and settings "
    "(HistGradientBoostingClassifier: fraud 200 trees, ranker 100, 15 leaves) fit on "
    "synthetic rows of their feature counts: the trainer keeps only ONNX, and MLServer's "
    "scikit-learn runtime needs the pickled estimator. Every server serves the same fitted "
    "model; answers are checked equal (1e-4) before timing.",
    "MLServer runs with its defaults (one parallel inference worker process) and "
    "OMP_NUM_THREADS=1, so scikit-learn predicts on one thread as ONNX Runtime does in every "
    "server here; uvloop is pinned to 0.21.0 because MLServer 1.7.1's worker fails to start "
    "with uvloop 0.22+. MLServer refuses the binary tensor extension, so every server gets "
    "JSON tensors.",
    "Feast's feature server runs as `feast serve` with one worker (as ours) and "
    "--max-requests lifted (its default restarts the worker every 1,000 requests).",
    "Our feature service path is our store behind the platform's service shell "
    "(benchmarks/peers/our_servers.py): the project serves features in process, it has no "
    "standalone feature server.",
]


def run(args: argparse.Namespace) -> dict[str, Any]:
    samples = ({"features_1_inproc": 300, "features_100_inproc": 30, "features_1_http": 100,
                "features_100_http": 20, "serving_1": 100, "serving_256": 30}
               if args.quick else
               {"features_1_inproc": 3000, "features_100_inproc": 300, "features_1_http": 1500,
                "features_100_http": 200, "serving_1": 1500, "serving_256": 300})
    # Other work on the shared machine shows here: the 1-minute load average as each family
    # starts, and at the end.
    load = {"before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        workdir = Path(scratch)
        redis_server = start_redis(workdir)
        try:
            features = features_family(redis_server.address, workdir, samples)
        finally:
            redis_server.stop()
        load["after features"] = round(os.getloadavg()[0], 2)
        serving = serving_family(workdir, samples, args.step_seconds)
        load["after model serving"] = round(os.getloadavg()[0], 2)
        assignment = assignment_family(workdir, args.ids)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "load_avg_1m": {**load, "after": round(os.getloadavg()[0], 2)},
        "samples": {**samples, "assignment_ids": args.ids,
                    "assignment_non_ascii_ids": NON_ASCII_IDS,
                    "load_step_seconds": int(args.step_seconds)},
        "versions": versions(),
        "features": features, "model_serving": serving, "assignment": assignment,
        "notes": NOTES,
    }


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small samples, 100,000 ids, 1 s load steps: a smoke run")
    parser.add_argument("--ids", type=int, default=None, help="ids assigned (1,000,000)")
    parser.add_argument("--step-seconds", type=float, default=None,
                        help="seconds per load step (4)")
    parser.add_argument("--result", type=Path, default=None,
                        help="where the result goes (benchmarks/results/peers.json; with "
                             "--quick reports/peers/quick.json: a smoke run is not a result)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "peers")
    args = parser.parse_args(argv)
    args.ids = args.ids or (100_000 if args.quick else 1_000_000)
    args.step_seconds = args.step_seconds or (1.0 if args.quick else 4.0)
    args.result = args.result or (args.out / "quick.json" if args.quick else RESULT)
    for venv in ("feast", "mlserver"):
        if not (VENVS / venv / "bin" / "python").exists():
            parser.error(f"{VENVS / venv} is missing: run `make bench-peers`")
    started_at = time.monotonic()
    result = run(args)
    result["seconds"] = round(time.monotonic() - started_at)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    summary = report.write(result, args.out)
    logger.info("wrote %s and %s in %d s", args.result, summary, result["seconds"])
    bad = [c["name"] for c in result["assignment"]["experiments"]
           if c["mismatches"] or c["non_ascii_mismatches"]]
    if bad:
        logger.error("GrowthBook and ours disagree on: %s", bad)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
