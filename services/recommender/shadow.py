"""Shadow ranking: a registered candidate ranker scores a sample of live requests, never shown.

    request ─▶ production list ─▶ answer                  (the critical path, unchanged)
        └── sampled (crc32 of the request id < share) ─▶ bounded queue ─▶ shadow thread:
              features (the rows production ranked, or built here for the control)
              ─▶ candidate.predict(version=V) ─▶ latency, top-k overlap with production,
                 one log record; a full queue drops the job (counted), never waits

The candidate scores the features as served (production's artifacts), the same rows that
impressions log and that a click-trained ranker learns from, so what it would have shown is
measured on exactly what production saw.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Histogram

from services.common.arrays import Float32Array, FloatArray
from services.common.models import ModelClient
from services.common.models.errors import ModelError
from services.common.telemetry import Metrics

logger = logging.getLogger(__name__)

OUTCOMES = ("scored", "failed", "dropped")


def sampled(request_id: str, share: float) -> bool:
    """The same request is always in or out: a replay samples the same requests."""
    return zlib.crc32(request_id.encode()) % 10_000 < round(share * 10_000)


def top_k_overlap(production: FloatArray, candidate: FloatArray, k: int) -> float:
    """|top-k by production ∩ top-k by the candidate| / k over the same candidates (1: same
    set). Stable sorts: ties break by candidate order, alike for both."""
    k = min(k, len(production))
    if k == 0:
        return 1.0
    ours = set(np.argsort(-production, kind="stable")[:k].tolist())
    theirs = set(np.argsort(-candidate, kind="stable")[:k].tolist())
    return len(ours & theirs) / k


@dataclass(frozen=True)
class ShadowJob:
    request_id: str
    rows: Callable[[], Float32Array]   # deferred: the control never built them on the path
    production: FloatArray             # production's relevance of the same candidates
    candidate_ids: Callable[[], list[str]]
    k: int


class ShadowMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.latency = metrics.latency(
            "shadow_duration_seconds", "the shadow ranker's call per sampled request (features "
            "built off the path included), by candidate version", ("version",))
        self.jobs: Counter = metrics.counter(
            "shadow_requests", "sampled requests by shadow outcome: scored, failed (the "
            "candidate did not answer), dropped (the shadow queue was full)", ("outcome",))
        self.overlap = Histogram(
            f"{metrics.service}_shadow_top_k_overlap_ratio",
            "share of production's top k that the shadow ranker also ranks in its top k, over "
            "the same candidates (1: they agree)", ("version",), registry=metrics.registry,
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
        for outcome in OUTCOMES:
            self.jobs.labels(outcome)


class ShadowRanker:
    """One daemon thread over a bounded queue; `offer` never blocks the request."""

    def __init__(self, *, model: ModelClient, model_name: str, version: int, share: float,
                 metrics: ShadowMetrics, capacity: int = 1_000) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"shadow share must be in (0, 1], got {share}")
        self.version = version
        self.share = share
        self._model = model
        self._model_name = model_name
        self._metrics = metrics
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="shadow-ranker", daemon=True)
        self._thread.start()

    def offer(self, job: ShadowJob) -> bool:
        """Queue a sampled request's job; False if it was not sampled or the queue was full."""
        if not sampled(job.request_id, self.share):
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._metrics.jobs.labels("dropped").inc()
            return False
        return True

    def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued job is handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def score(self, job: ShadowJob) -> float | None:
        """One job: the candidate's scores and their agreement with production; None on error."""
        start = time.perf_counter()
        try:
            prediction = self._model.predict(self._model_name, job.rows(), version=self.version)
        except ModelError as exc:
            self._metrics.jobs.labels("failed").inc()
            logger.warning("shadow ranker failed", extra={"version": self.version,
                                                          "error": str(exc)})
            return None
        elapsed = time.perf_counter() - start
        candidate = np.asarray(prediction.outputs["probabilities"], dtype=np.float64)[:, 1]
        overlap = top_k_overlap(job.production, candidate, job.k)
        version = str(self.version)
        ids = job.candidate_ids()
        self._metrics.latency.labels(version).observe(elapsed)
        self._metrics.overlap.labels(version).observe(overlap)
        self._metrics.jobs.labels("scored").inc()
        logger.info("shadow ranking", extra={
            "request_id": job.request_id, "shadow_version": self.version,
            "top_k_overlap": overlap, "shadow_ms": round(elapsed * 1e3, 3),
            "shadow_top_k": [ids[i] for i in np.argsort(-candidate, kind="stable")[:job.k]],
            "production_top_k": [ids[i] for i in np.argsort(-job.production,
                                                            kind="stable")[:job.k]]})
        return overlap

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.score(job)
            except Exception:  # a bug in one job must not end the shadow for the process
                logger.exception("shadow job failed")
                self._metrics.jobs.labels("failed").inc()
            finally:
                self._queue.task_done()
