"""Model serving latency: scikit-learn vs ONNX Runtime in-process vs the model server over HTTP.

    .venv/bin/python benchmarks/model_serving.py [--samples-one 3000] [--samples-batch 400]

Trains a representative model (HistGradientBoostingClassifier, 150 trees, 32 features: the fraud
model's shape) on random data, exports it to ONNX (float32, ZipMap off), registers it in a
temporary repository and starts the real model server on it (`python -m services.modelserver`
on a free port). Then, in one run, the ways of getting a prediction take turns in one loop so
machine noise hits them alike: single rows first, then batches of 256. Raw samples go to
reports/model-serving/<UTC time>.json, the plot to docs/img/model-serving-latency.png, and a
summary table for docs/model-serving.md to the log.
"""

from __future__ import annotations

import argparse
import gc
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from services.common.machine import cpu_model
from services.common.models import LocalModelClient, ModelRepository, RemoteModelClient
from services.common.models.oip import encode_request
from services.designs.model_features import FRAUD_FEATURE_NAMES

logger = logging.getLogger("model_serving")
REPO_ROOT = Path(__file__).resolve().parents[1]
PERCENTILES = (50, 90, 99, 99.9)
TREES, BATCH = 150, 256
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}  # the trainer's export settings
WAYS = ("scikit-learn predict_proba", "ONNX Runtime in-process", "HTTP, binary tensors",
        "HTTP, JSON tensors")
COLOURS = dict(zip(WAYS, ("tab:red", "tab:green", "tab:blue", "tab:purple"), strict=True))

Predict = Callable[[np.ndarray], object]


@dataclass
class Case:
    name: str
    rows: int
    samples: int
    latencies_us: dict[str, list[float]] = field(default_factory=dict)
    server_mean_us: dict[str, float] = field(default_factory=dict)


def server_totals(url: str) -> dict[str, float]:
    """Sums and counts of the server's own histograms: ONNX Runtime time and whole-request time
    (first byte in to last byte out, inside the server) of successful inference calls."""
    totals = {"model_s": 0.0, "model_n": 0.0, "request_s": 0.0, "request_n": 0.0}
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name == "modelserver_inference_duration_seconds":
                key = {"modelserver_inference_duration_seconds_sum": "model_s",
                       "modelserver_inference_duration_seconds_count": "model_n"}.get(sample.name)
            elif (family.name == "modelserver_http_request_duration_seconds"
                  and sample.labels.get("method") == "POST"
                  and sample.labels.get("status") == "200"):
                key = {"modelserver_http_request_duration_seconds_sum": "request_s",
                       "modelserver_http_request_duration_seconds_count": "request_n"
                       }.get(sample.name)
            else:
                key = None
            if key:
                totals[key] += sample.value
    return totals


def server_means(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    def mean(what: str) -> float:
        count = after[f"{what}_n"] - before[f"{what}_n"]
        return round((after[f"{what}_s"] - before[f"{what}_s"]) / count * 1e6, 1)

    return {"onnx_runtime_in_server": mean("model"), "whole_request_in_server": mean("request")}


def train(seed: int = 7) -> tuple[HistGradientBoostingClassifier, np.ndarray, bytes, float]:
    """A gradient-boosted model on random data with a nonlinear label, exported and checked."""
    rng = np.random.default_rng(seed)
    features = len(FRAUD_FEATURE_NAMES)
    rows = rng.normal(size=(20_000, features)).astype(np.float32)
    signal = rows[:, 0] * rows[:, 1] + np.sin(rows[:, 2] * 3) + rows[:, 3:8].sum(axis=1) / 3
    labels = (signal + rng.normal(scale=0.5, size=len(rows)) > 0.8).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=TREES, early_stopping=False,
                                               random_state=seed).fit(rows, labels)
    onnx_bytes = to_onnx(estimator, initial_types=[("features", FloatTensorType([None, features]))],
                         options={id(estimator): {"zipmap": False}},
                         target_opset=TARGET_OPSET).SerializeToString()
    holdout = rng.normal(size=(2_000, features)).astype(np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        repository = ModelRepository(Path(scratch))
        repository.register("check", onnx_bytes, feature_names=FRAUD_FEATURE_NAMES, metrics={},
                            training_data_hash="", description="parity check")
        with LocalModelClient(repository, reload_interval_s=None) as client:
            onnx_probabilities = client.predict("check", holdout).outputs["probabilities"]
    parity = float(np.max(np.abs(onnx_probabilities - estimator.predict_proba(holdout))))
    return estimator, holdout, bytes(onnx_bytes), parity


@contextmanager
def model_server(repository: ModelRepository, workdir: Path) -> Iterator[str]:
    """The real server process on a free port, until the block ends."""
    from services.common.loopback import free_port  # noqa: PLC0415

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLSD_MODEL_REPOSITORY": str(repository.root),
           "MLSD_MODEL_SERVER_PORT": str(port), "MLSD_LOG_LEVEL": "WARNING"}
    log_path = workdir / "modelserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.modelserver"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"model server did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def json_predictor(url: str) -> tuple[Predict, httpx.Client]:
    """Plain OIP JSON over a keep-alive connection: what curl or any HTTP client sends."""
    http = httpx.Client(base_url=url, timeout=5.0)

    def predict(rows: np.ndarray) -> object:
        body, headers = encode_request({"features": rows}, binary=False)
        response = http.post("/v2/models/fraud/infer", content=body, headers=headers)
        response.raise_for_status()
        return response.json()

    return predict, http


def measure(case: Case, ways: Mapping[str, Predict], rows: np.ndarray, warmup: int) -> None:
    batches = [rows[i:i + case.rows] for i in range(0, len(rows) - case.rows + 1, case.rows)]
    for name in ways:
        case.latencies_us[name] = []
    for i in range(warmup):
        for predict in ways.values():
            predict(batches[i % len(batches)])
    gc.collect()  # start clean; GC stays on during the run, as in a service
    order = list(ways.items())
    for i in tqdm(range(case.samples), desc=case.name, unit="round"):
        batch = batches[i % len(batches)]
        # rotate who goes first, so none always runs on a warmer cache
        for name, predict in order[i % len(order):] + order[:i % len(order)]:
            start = time.perf_counter_ns()
            predict(batch)
            case.latencies_us[name].append((time.perf_counter_ns() - start) / 1000)


def summary(samples_us: Sequence[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(samples_us), PERCENTILES)
    stats = {f"p{p:g}_us": round(float(v), 1) for p, v in zip(PERCENTILES, values, strict=True)}
    stats["mean_us"] = round(float(np.mean(samples_us)), 1)
    return stats


def plot(cases: Sequence[Case], meta: Mapping[str, Any], path: Path) -> None:
    """Latency by percentile per way of predicting, one panel per batch size, log scale."""
    figure, axes = plt.subplots(1, len(cases), figsize=(6.5 * len(cases), 4.8))
    quantiles = np.append(1 - np.logspace(0, -3, 200)[:-1], 0.999)
    x = -np.log10(1 - quantiles)
    for axis, case in zip(np.atleast_1d(axes), cases, strict=True):
        for name, samples in case.latencies_us.items():
            latency_ms = np.quantile(np.asarray(samples), quantiles) / 1000
            p50, p99 = np.percentile(samples, [50, 99]) / 1000
            axis.plot(x, latency_ms, color=COLOURS[name],
                      label=f"{name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        axis.set_yscale("log")
        axis.set_xticks([0, 1, 2, 3], ["p0", "p90", "p99", "p99.9"])
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency per call (ms, log scale)")
        axis.set_title(f"{case.name} ({case.samples} calls each)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(f"HistGradientBoosting, {TREES} trees, {meta['features']} features: "
                    f"client wall time; onnxruntime {meta['versions']['onnxruntime']}, "
                    f"scikit-learn {meta['versions']['scikit-learn']}, {meta['cpus']} CPUs, "
                    f"{meta['date']}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def versions() -> dict[str, str]:
    names = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "fastapi", "uvicorn",
             "httpx", "protobuf")
    found = {name: importlib.metadata.version(name) for name in names}
    return {"python": platform.python_version(), **found}


def run(args: argparse.Namespace) -> None:
    logger.info("training HistGradientBoostingClassifier (%d trees, %d features)", TREES,
                len(FRAUD_FEATURE_NAMES))
    estimator, rows, onnx_bytes, parity = train()
    load_before = os.getloadavg()
    cases = [Case("1 row", 1, args.samples_one), Case(f"batch of {BATCH} rows", BATCH,
                                                      args.samples_batch)]
    with tempfile.TemporaryDirectory() as workdir:
        repository = ModelRepository(Path(workdir) / "models")
        repository.register("fraud", onnx_bytes, feature_names=FRAUD_FEATURE_NAMES,
                            metrics={}, training_data_hash="random", description="benchmark")
        with model_server(repository, Path(workdir)) as url, \
                LocalModelClient(repository, reload_interval_s=None) as local, \
                RemoteModelClient(url, timeout_s=5.0, binary=True) as remote:
            send_json, http = json_predictor(url)
            ways: dict[str, Predict] = {
                WAYS[0]: estimator.predict_proba,
                WAYS[1]: lambda r: local.predict("fraud", r),
                WAYS[2]: lambda r: remote.predict("fraud", r),
                WAYS[3]: send_json,
            }
            # One thread for scikit-learn too, as for ONNX Runtime: its OpenMP pool would
            # otherwise spin on both cores between calls and slow the server process down.
            with threadpool_limits(limits=1):
                for case in cases:
                    before = server_totals(url)
                    measure(case, ways, rows, args.warmup)
                    case.server_mean_us = server_means(before, server_totals(url))
            http.close()
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        # Other processes share the 2 cores: the load average says how quiet the run was.
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "versions": versions(), "features": len(FRAUD_FEATURE_NAMES), "trees": TREES,
        "onnx_bytes": len(onnx_bytes), "parity_max_abs_diff": parity,
        "how": "time.perf_counter_ns around each call in one client thread; the ways take turns "
               "in one loop (first one rotates); warm-up excluded; the server is a separate "
               "process on the same machine (loopback, keep-alive connection); scikit-learn and "
               "ONNX Runtime both limited to one thread",
    }
    report(cases, meta, args)


def report(cases: Sequence[Case], meta: Mapping[str, Any], args: argparse.Namespace) -> None:
    logger.info("model: %d bytes of ONNX; max |p_onnx - p_sklearn| = %.2e on 2,000 rows",
                meta["onnx_bytes"], meta["parity_max_abs_diff"])
    logger.info("load average (1 min) before and after: %s", meta["load_average_before_after"])
    logger.info("| case | way | calls | p50 µs | p90 µs | p99 µs | p99.9 µs | mean µs |")
    logger.info("|---|---|---|---|---|---|---|---|")
    results = []
    for case in cases:
        stats = {name: summary(samples) for name, samples in case.latencies_us.items()}
        for name, s in stats.items():
            logger.info("| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |", case.name, name,
                        case.samples, s["p50_us"], s["p90_us"], s["p99_us"], s["p99.9_us"],
                        s["mean_us"])
        onnx = stats[WAYS[1]]
        ratios = {name: {p: round(s[p] / onnx[p], 2) for p in ("p50_us", "p99_us")}
                  for name, s in stats.items()}
        for name, ratio in ratios.items():
            logger.info("%s: %s / ONNX Runtime in-process = %.1fx at p50, %.1fx at p99",
                        case.name, name, ratio["p50_us"], ratio["p99_us"])
        logger.info("%s: inside the server, mean per HTTP call (both encodings): ONNX Runtime "
                    "%.1f µs, whole request %.1f µs", case.name,
                    case.server_mean_us["onnx_runtime_in_server"],
                    case.server_mean_us["whole_request_in_server"])
        results.append({"name": case.name, "rows": case.rows, "samples": case.samples,
                        "summary": stats, "over_onnx_in_process": ratios,
                        "server_mean_us": case.server_mean_us,
                        "latencies_us": case.latencies_us})
    args.reports.mkdir(parents=True, exist_ok=True)
    raw = args.reports / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(json.dumps({"meta": meta, "cases": results}, indent=1))
    plot(cases, meta, args.plot)
    logger.info("raw samples: %s; plot: %s", raw, args.plot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-one", type=int, default=3000, help="calls per way, 1 row")
    parser.add_argument("--samples-batch", type=int, default=400,
                        help=f"calls per way, {BATCH} rows")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports/model-serving")
    parser.add_argument("--plot", type=Path,
                        default=REPO_ROOT / "docs/img/model-serving-latency.png")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    matplotlib.use("Agg")  # files only, no display needed
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
