"""Open-loop load with faults on a schedule, and the provenance every chaos report carries."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from redis.cluster import RedisCluster

from tests.e2e.conftest import StartService
from tests.harness import REPO_ROOT


@dataclass
class Answer:
    """One request as the client saw it: when it was sent (s after the start), how it ended."""

    sent_s: float
    status: int  # 0: no HTTP answer (connection error or client timeout)
    latency_ms: float
    flags: dict[str, Any] = field(default_factory=dict)


Send = Callable[[httpx.AsyncClient, int], Awaitable[tuple[int, dict[str, Any]]]]

# How long the load's clients keep an idle connection: under the services' own idle timeout
# (uvicorn's timeout_keep_alive, 5 s). At httpx's default (5 s, the same) a connection idle for
# just under 5 s could be taken for a request as the server closed it: the request got no
# answer (status 0), a race of the load client's, not the service's. The one request without an
# HTTP answer that failed a fresh clone's slow-dependency run (2026-12-06 19:57 UTC) was sent at
# second 11, 5.0 s after the burst of connections opened when the Redis pause began (6.04 s).
# A client must close first: HAProxy's and nginx's own guidance for their upstream pools.
KEEPALIVE_S = 2.0


def transaction(run: str, n: int) -> dict[str, Any]:
    """The n-th transaction a chaos run scores: its own id, one of 97 cards, made now."""
    return {"transaction_id": f"{run}-{n}", "user_id": "cust1", "card_id": f"card{n % 97}",
            "amount": 25.0, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": "m1", "merchant_category": "grocery", "terminal_id": "term1",
            "latitude": 48.85, "longitude": 2.35, "timestamp": datetime.now(UTC).isoformat(),
            "ip_address": "81.2.3.4", "device_id": "dev1"}


def watch_events(run: str, users: list[str], per_user: int = 6) -> list[dict[str, Any]]:
    """Completed watches, `per_user` a user, made now: enough for personal (ranked) lists."""
    return [{"id": f"{run}-w{n}-{i}", "type": "watch", "source": "chaos",
             "time": datetime.now(UTC).isoformat(),
             "data": {"user_id": user, "content_id": f"t{(n * 7 + i) % 200 + 1}",
                      "watch_seconds": 1200, "completed": True}}
            for n, user in enumerate(users) for i in range(per_user)]


def alternating(score: Send, recommend: Send) -> Send:
    """One schedule, two streams: even n to fraud (its answers flagged), odd to the recommender."""
    async def both(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        if n % 2 == 0:
            status, flags = await score(client, n // 2)
            return status, {"fraud": True, **flags}
        return await recommend(client, n // 2)
    return both


async def _one(client: httpx.AsyncClient, send: Send, n: int, start: float,
               answers: list[Answer]) -> None:
    sent = time.monotonic()
    try:
        status, flags = await send(client, n)
    except httpx.HTTPError as exc:
        status, flags = 0, {"error": type(exc).__name__}
    # a sender that retries after an answer (retry_after) reports its first answer's latency
    latency_ms = flags.pop("latency_ms", (time.monotonic() - sent) * 1000)
    answers.append(Answer(sent - start, status, latency_ms, flags))


async def _run(send: Send, rate: float, duration_s: float,
               faults: list[tuple[float, Callable[[], None]]], timeout_s: float
               ) -> list[Answer]:
    answers: list[Answer] = []
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50,
                          keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        start = time.monotonic()
        pending = sorted(faults, key=lambda f: f[0])
        fault_tasks = []
        for n in range(int(rate * duration_s)):
            due = start + n / rate  # open loop: the schedule never waits for an answer
            while pending and pending[0][0] <= due - start:
                fault_tasks.append(loop.run_in_executor(None, pending.pop(0)[1]))
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(_one(client, send, n, start, answers)))
        for _, action in pending:
            fault_tasks.append(loop.run_in_executor(None, action))
        await asyncio.gather(*tasks, *fault_tasks)
    return sorted(answers, key=lambda a: a.sent_s)


def open_loop(send: Send, rate: float, duration_s: float,
              faults: list[tuple[float, Callable[[], None]]], timeout_s: float = 10.0
              ) -> list[Answer]:
    """`rate` requests a second for `duration_s`, each `send(client, n)`; each fault runs (in a
    thread) once its time, in seconds from the start, has come."""
    return asyncio.run(_run(send, rate, duration_s, faults, timeout_s))


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    """One GET read to its end: its status, or 0 and the error's type when it got none."""
    try:
        async with session.get(url) as response:
            await response.read()
            return response.status, {}
    except (TimeoutError, aiohttp.ClientError) as exc:
        return 0, {"error": type(exc).__name__}


async def _gets(url_of: Callable[[int], str], rate: float, duration_s: float,
                timeout_s: float, max_connections: int) -> list[Answer]:
    answers: list[Answer] = []
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        start = loop.time()

        async def one(n: int, due: float) -> None:
            status, flags = await _get(session, url_of(n))
            answers.append(Answer(due, status, (loop.time() - start - due) * 1000, flags))

        tasks = []
        for n in range(int(rate * duration_s)):
            due = n / rate
            await asyncio.sleep(max(0.0, start + due - loop.time()))
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    return sorted(answers, key=lambda a: a.sent_s)


def open_loop_gets(url_of: Callable[[int], str], rate: float, duration_s: float,
                   timeout_s: float = 10.0, max_connections: int = 200) -> list[Answer]:
    """`rate` GETs a second of `url_of(n)` for `duration_s`, on aiohttp (about 0.13 ms of CPU
    a request here against httpx's 2 ms, load-tests/README.md: on two shared cores the load
    generator must not take the core an added worker needs). Each latency counts from when the
    request was due, so a generator that falls behind shows it; at most `max_connections`
    connections, kept alive and reused as a pooled client does."""
    return asyncio.run(_gets(url_of, rate, duration_s, timeout_s, max_connections))


async def _closed(url_of: Callable[[int], str], concurrency: int, duration_s: float,
                  timeout_s: float) -> list[Answer]:
    answers: list[Answer] = []
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        start = loop.time()
        counter = iter(range(10**9))

        async def caller() -> None:
            while loop.time() - start < duration_s:
                n, sent = next(counter), loop.time() - start
                status, flags = await _get(session, url_of(n))
                answers.append(Answer(sent, status, (loop.time() - start - sent) * 1000, flags))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return sorted(answers, key=lambda a: a.sent_s)


def closed_loop_gets(url_of: Callable[[int], str], concurrency: int, duration_s: float,
                     timeout_s: float = 10.0) -> list[Answer]:
    """`concurrency` callers each sending the next GET as soon as the last is answered, for
    `duration_s`: what a service serves when it is never idle (its capacity now, on what the
    machine gives it), where an open loop measures latency at a chosen rate."""
    return asyncio.run(_closed(url_of, concurrency, duration_s, timeout_s))


def per_second(answers: list[Answer]) -> list[dict[str, Any]]:
    """The timeline in one-second buckets of send time: answers by status, flagged answers by
    flag, requests without an HTTP answer by the client's error, and the slowest (p99)
    latency."""
    buckets: dict[int, list[Answer]] = {}
    for answer in answers:
        buckets.setdefault(int(answer.sent_s), []).append(answer)
    timeline = []
    for second, group in sorted(buckets.items()):
        statuses: dict[str, int] = {}
        flagged: dict[str, int] = {}
        errors: dict[str, int] = {}
        for answer in group:
            statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
            for name, value in answer.flags.items():
                if value is True:
                    flagged[name] = flagged.get(name, 0) + 1
            if answer.status == 0:
                error = str(answer.flags.get("error", "unknown"))
                errors[error] = errors.get(error, 0) + 1
        timeline.append({"second": second, "statuses": statuses, "flagged": flagged,
                         **({"errors": errors} if errors else {}),
                         "p99_ms": round(percentile([a.latency_ms for a in group], 99), 1)})
    return timeline


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def provenance() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) \
        if cpuinfo.exists() else platform.processor()
    kafka = (REPO_ROOT / "infra/kafka/pom.xml").read_text().split("<kafka.version>")[1] \
        .split("<")[0]
    commit = _version(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"])
    return {
        "machine": {"nproc": os.cpu_count(), "cpu_model": model,
                    "load_average_at_start": list(os.getloadavg()),
                    "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "kafka": kafka,
                     "redis_server": _version(["redis-server", "--version"]),
                     "redis_py": metadata.version("redis"),
                     "confluent_kafka": metadata.version("confluent-kafka"),
                     "kafka_python": metadata.version("kafka-python")},
        "commit": commit,
        "topology": "3 KRaft nodes (broker+controller), RF 3, min.insync.replicas 2; Redis "
                    "Cluster 3 masters + 3 replicas, cluster-node-timeout 2000 ms, password",
    }


def write_report(folder: Path, name: str, what: str, started: datetime,
                 settings: dict[str, Any], results: dict[str, Any],
                 answers: list[Answer] | None = None) -> Path:
    """<folder>/<name>.json: what was done, on what, with which load, and what came out."""
    report = {"what": what, "started": started.isoformat(),
              "finished": datetime.now(UTC).isoformat(), **provenance(),
              "settings": settings, "results": results}
    if answers is not None:
        report["per_second"] = per_second(answers)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


def seed_watches(on_cluster: StartService, cluster_client: RedisCluster, run: str,
                 users: list[str]) -> None:
    """Six watches for each user through ingest and the stream: the recommender's answers
    for them are personal (no fallback) while Redis answers."""
    stream = on_cluster("stream", MLSD_STREAM_CONCERNS="watch-features")
    ingest = on_cluster("ingest")
    assert httpx.post(f"{ingest.url}/v1/events", json={"events": watch_events(run, users)},
                      timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while not all(cluster_client.zcard(f"fs:watch_history:{{{u}}}") == 6 for u in users):
        assert time.monotonic() < deadline, "the watches never reached the features"
        time.sleep(0.2)
    ingest.stop()
    stream.stop()  # only the request paths run under the fault


async def retry_once(call: Callable[[], Awaitable[httpx.Response]]
                     ) -> tuple[int, dict[str, Any]]:
    """One retry when the connection is cut or refused; an HTTP answer, whatever its status,
    is final (a 5xx would be the service's answer, not the crash's)."""
    try:
        response = await call()
        return response.status_code, {"retried": False}
    except httpx.TransportError as exc:
        first = type(exc).__name__
    try:
        response = await call()
        return response.status_code, {"retried": True, "first_error": first}
    except httpx.TransportError as exc:
        return 0, {"retried": True, "first_error": first, "error": type(exc).__name__}


async def retry_after(call: Callable[[], Awaitable[httpx.Response]], attempts: int = 5
                      ) -> tuple[int, dict[str, Any]]:
    """Ingest's documented client (docs/ingest.md): a 503 with Retry-After is sent again, the
    same batch, after that many seconds (its events keep their ids: what was stored comes back
    as a duplicate). The first answer is the request's status and latency; the flags say how
    the retries ended: `final_status`, the last attempt's own latency, and when the batch was
    accepted, counted from the first send."""
    started = time.monotonic()
    response = await call()
    first_status, first_ms = response.status_code, (time.monotonic() - started) * 1000
    last_ms, tries = first_ms, 1
    while response.status_code == 503 and "retry-after" in response.headers \
            and tries < attempts:
        await asyncio.sleep(float(response.headers["retry-after"]))
        sent = time.monotonic()
        response = await call()
        last_ms, tries = (time.monotonic() - sent) * 1000, tries + 1
    return first_status, {"latency_ms": first_ms, "attempts": tries,
                          "final_status": response.status_code,
                          "final_latency_ms": round(last_ms, 1),
                          "done_after_ms": round((time.monotonic() - started) * 1000, 1)}


class LoadAverage:
    """The machine's 1-minute load average every `every_s` while a run lasts: the cores are
    shared, and what else ran says how far a run's latencies are its own."""

    def __init__(self, every_s: float = 10.0) -> None:
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[float] = []

    def __enter__(self) -> LoadAverage:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        self.samples.append(os.getloadavg()[0])
        while not self._stop.wait(self._every_s):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, Any]:
        return {"every_s": self._every_s, "samples": len(self.samples),
                "mean": round(sum(self.samples) / len(self.samples), 2) if self.samples else None,
                "max": round(max(self.samples), 2) if self.samples else None,
                "min": round(min(self.samples), 2) if self.samples else None}
