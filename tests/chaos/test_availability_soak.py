"""Fault 6 of issue 17: a soak with faults 1-3 on a schedule, and the availability it leaves.

Open-loop load on ingest, fraud and the recommender for MLSD_SOAK_S seconds (600 by default,
the issue's ten minutes); every CYCLE_S seconds a broker is killed (restarted 10 s later), then a
Redis master (restarted once its replica took over), then one worker of fraud and of the
recommender (their supervisors replace them). Availability is the share of requests answered
2xx inside their budget (goal: 99.9 %); the report has it per service and per second, and a plot
of the per-second share with the faults marked is written beside it.

`make soak` runs it (not part of `make chaos`: ten minutes of three JVMs, six Redis nodes and
the services take the machine). MLSD_SOAK_S=120 is a short trial of the harness;
MLSD_SOAK_FAULTS=0 runs the same load with no fault (what the machine alone costs).

Every miss is written down with what went on around it (tests/chaos/misses.py): the answer's
own flags and processing time, the fault whose window it was sent in, each Redis node's forks,
the brokers' GC pauses and each process's CPU in that second (services/devstack/probes.py).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from matplotlib.figure import Figure

from services.devstack.cluster import redis_roles
from services.devstack.probes import ProcessCpu, RedisForks, gc_pauses_in
from services.ingest.settings import IngestSettings
from tests.chaos.elections import election_after_kill
from tests.chaos.elections import fencings as fenced_in_logs
from tests.chaos.load import (
    Answer,
    LoadAverage,
    open_loop,
    percentile,
    retry_after,
    retry_once,
    transaction,
    write_report,
)
from tests.chaos.misses import answer_flags, by_cause, describe
from tests.chaos.processes import (
    await_started,
    await_workers,
    jvm_options,
    kill_worker,
    live_workers,
)
from tests.e2e.conftest import StartService
from tests.harness import ClusterTopology

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos,
              pytest.mark.soak]

SOAK_S = float(os.environ.get("MLSD_SOAK_S", "600"))
FAULTS = os.environ.get("MLSD_SOAK_FAULTS", "1") != "0"
RATE = 10.0  # requests a second to each of ingest, fraud and the recommender
CYCLE_S = 180.0  # broker at +30 s, Redis master at +90 s, workers at +150 s of each cycle
BUDGET_MS = {"ingest": 100.0, "fraud": 50.0, "recommender": 100.0}
GOAL = 0.999
INGEST_ATTEMPTS = 5  # ingest's client: a 503's Retry-After waited, then the batch again
# A miss belongs to the last fault killed at most this long before it was sent (a request sent
# a second before a kill can wait for its election); later or earlier ones are the machine's.
FAULT_WINDOW_S = (-1.0, 15.0)
SERVICES = ("ingest", "fraud", "recommender")


def schedule(topology: ClusterTopology, workers: dict[str, int],
             marks: list[tuple[float, str]], fencings: list[dict[str, Any]]
             ) -> list[tuple[float, Any]]:
    """(seconds from the start, action) for every fault of every cycle inside the soak; each
    broker kill adds to `fencings` what the surviving nodes logged about it."""
    start = time.monotonic()

    def mark(what: str) -> None:
        marks.append((time.monotonic() - start, what))

    brokers = itertools.cycle(topology.kafka_names)  # each broker in turn

    def broker() -> None:
        victim = next(brokers)
        mark(f"kill {victim}")
        killed = datetime.now(UTC)
        topology.kill(victim)
        time.sleep(10)
        restarting = datetime.now(UTC)
        topology.restart(victim)
        mark(f"{victim} back")
        # read now: a node's log starts afresh when a later cycle restarts it
        fencings.append({"victim": victim, "killed": killed.isoformat(),
                         "restarting": restarting.isoformat(), **election_after_kill(
            [topology.servers[n].log_path for n in topology.kafka_names if n != victim],
            int(victim.removeprefix("kafka-")), killed, restarting)})

    def redis_master() -> None:
        roles = redis_roles(topology.redis_addresses, topology.redis_password)
        victim = next(n for n in topology.redis_names
                      if roles[topology.nodes[n].address] == "master")
        mark(f"kill {victim}")
        topology.kill(victim)
        time.sleep(8)  # past the cluster-node-timeout (2 s) and the promotion
        topology.restart(victim)
        mark(f"{victim} back")

    def worker() -> None:
        mark("kill a worker of fraud and of the recommender")
        for parent in workers.values():
            kill_worker(min(live_workers(parent)))
            await_workers(parent, 2)
        mark("workers replaced")

    actions: list[tuple[float, Any]] = []
    for cycle in range(int(SOAK_S // CYCLE_S) + 1 if FAULTS else 0):
        for offset, action in ((30.0, broker), (90.0, redis_master), (150.0, worker)):
            at = cycle * CYCLE_S + offset
            if at < SOAK_S - 20:
                actions.append((at, action))
    return actions


def availability(answers: list[Answer]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in SERVICES:
        mine = [a for a in answers if a.flags.get("service") == name]
        good = [a for a in mine if good_answer(a)]
        result[name] = {"requests": len(mine), "good": len(good),
                        "share": round(len(good) / len(mine), 5) if mine else None,
                        "statuses": {str(k): v for k, v in
                                     sorted(Counter(a.status for a in mine).items())}}
    good = sum(r["good"] for r in result.values())
    total = sum(r["requests"] for r in result.values())
    result["all"] = {"requests": total, "good": good, "share": round(good / total, 5)}
    result["with_ingest_retry"] = with_ingest_retry(answers, result)
    return result


def live_brokers_fenced(topology: ClusterTopology, started: datetime,
                        kills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fencings in the whole run other than each killed broker's own while it was down: a
    live broker whose heartbeats stopped for a session (a pause, a starved core)."""
    fenced = fenced_in_logs([topology.servers[n].log_path for n in topology.kafka_names],
                            started, datetime.now(UTC))

    def expected(at: datetime, broker: int) -> bool:
        return any(f"kafka-{broker}" == k["victim"] and datetime.fromisoformat(k["killed"])
                   <= at <= datetime.fromisoformat(k["restarting"]) for k in kills)

    return [{"at": at.isoformat(), "broker": broker} for at, broker in fenced
            if not expected(at, broker)]


def good_answer(a: Answer) -> bool:
    return 200 <= a.status < 300 and a.latency_ms <= BUDGET_MS[str(a.flags["service"])]


def misses_by_fault(answers: list[Answer], marks: list[tuple[float, str]]
                    ) -> list[dict[str, Any]]:
    """Each service's misses, by the fault whose window (FAULT_WINDOW_S around its kill) they
    were sent in, and the rest as "no fault": where the availability went. The marks are on
    the schedule's clock, which starts with the load's (within milliseconds)."""
    kills = sorted((at, what) for at, what in marks if what.startswith("kill"))
    rows = [{"what": what, "at_s": round(at, 1), **dict.fromkeys(SERVICES, 0)}
            for at, what in kills] + [{"what": "no fault", "at_s": None,
                                       **dict.fromkeys(SERVICES, 0)}]
    for a in answers:
        if good_answer(a):
            continue
        inside = fault_of(a, kills)
        rows[-1 if inside is None else inside][str(a.flags["service"])] += 1
    return rows


def fault_of(a: Answer, kills: list[tuple[float, str]]) -> int | None:
    """The index of the last kill whose window (FAULT_WINDOW_S) the request was sent in."""
    before, after = FAULT_WINDOW_S
    inside = [i for i, (at, _) in enumerate(kills) if before <= a.sent_s - at < after]
    return inside[-1] if inside else None


def described_misses(answers: list[Answer], marks: list[tuple[float, str]],
                     probes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every miss with what the probes saw around it (tests/chaos/misses.py)."""
    kills = sorted((at, what) for at, what in marks if what.startswith("kill"))
    described = []
    for a in answers:
        if good_answer(a):
            continue
        inside = fault_of(a, kills)
        described.append(describe(
            a, BUDGET_MS[str(a.flags["service"])],
            None if inside is None else f"{kills[inside][1]} at {kills[inside][0]:.1f} s",
            probes["redis_forks"], probes["kafka_gc_pauses"], probes["cpu_per_second"],
            os.cpu_count() or 1))
    return described


class Probes:
    """The soak's probes (services/devstack/probes.py) on one clock, seconds from `start` (an
    epoch taken before the load); `stop` moves what they saw onto the load's clock, given how
    long after `start` its first request was sent."""

    def __init__(self, topology: ClusterTopology, groups: dict[str, Any]) -> None:
        self.start = time.time()
        self._topology = topology
        self._forks = {n: RedisForks(f"redis://{topology.nodes[n].address}/0",
                                     topology.redis_password, start=self.start)
                       for n in topology.redis_names}
        self._cpu = ProcessCpu(groups, start=self.start)

    def stop(self, offset_s: float) -> dict[str, Any]:
        until = time.time() - self.start
        forks = {n: probe.stop() for n, probe in self._forks.items()}
        gc = gc_pauses_in({n: self._topology.gc_logs(n) for n in self._topology.kafka_names},
                          self.start, until)
        cpu = self._cpu.stop()

        def shift(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
            return [{**r, **{k: round(r[k] - offset_s, 2) for k in keys}} for r in rows]

        return {"clock_offset_s": round(offset_s, 3),
                "redis_forks": {n: shift(f["details"], "from_s", "to_s")
                                for n, f in forks.items()},
                "kafka_gc_pauses": {n: shift(p, "from_s", "to_s") for n, p in gc.items()},
                "cpu_per_second": shift(cpu, "t_s")}


def probe_summary(probes: dict[str, Any]) -> dict[str, Any]:
    """The probes' totals: forks per node, GC pauses per broker (count, longest, sum)."""
    return {"redis_forks": {n: {"forks": len(f), "seconds": round(sum(
                w["to_s"] - w["from_s"] for w in f), 1), "kinds": dict(Counter(
                w["kind"] for w in f))} for n, f in probes["redis_forks"].items()},
            "kafka_gc_pauses": {n: {"pauses": len(p), "max_ms": max((x["ms"] for x in p),
                                                                    default=0.0),
                                    "total_ms": round(sum(x["ms"] for x in p), 1)}
                                for n, p in probes["kafka_gc_pauses"].items()}}


def with_ingest_retry(answers: list[Answer], raw: dict[str, Any]) -> dict[str, Any]:
    """The same requests, an ingest post counted by how its documented retries ended
    (tests/chaos/load.py retry_after): good when its last attempt was a 2xx inside budget.
    The retries' waits are not in that latency; `accepted_after_ms` says how long they took."""
    posts = [a for a in answers if a.flags.get("service") == "ingest"]
    good = [a for a in posts if 200 <= int(a.flags["final_status"]) < 300
            and float(a.flags["final_latency_ms"]) <= BUDGET_MS["ingest"]]
    retried = [a for a in posts if int(a.flags["attempts"]) > 1]
    accepted_late = [float(a.flags["done_after_ms"]) for a in retried
                     if 200 <= int(a.flags["final_status"]) < 300]
    others = sum(raw[name]["good"] for name in SERVICES if name != "ingest")
    total = raw["all"]["requests"]
    return {
        "ingest": {"requests": len(posts), "good": len(good),
                   "share": round(len(good) / len(posts), 5) if posts else None,
                   "retried": len(retried),
                   "never_accepted": sum(not 200 <= int(a.flags["final_status"]) < 300
                                         for a in posts),
                   "final_statuses": {str(k): v for k, v in sorted(Counter(
                       int(a.flags["final_status"]) for a in posts).items())},
                   "accepted_after_ms": {"p50": round(percentile(accepted_late, 50), 1),
                                         "max": round(max(accepted_late), 1)}
                   if accepted_late else None},
        "all": {"requests": total, "good": others + len(good),
                "share": round((others + len(good)) / total, 5)},
    }


def plot(answers: list[Answer], marks: list[tuple[float, str]], path: Path) -> None:
    seconds: dict[int, list[bool]] = {}
    for a in answers:
        seconds.setdefault(int(a.sent_s), []).append(good_answer(a))
    xs = sorted(seconds)
    figure = Figure(figsize=(10, 3.5))
    axis = figure.subplots()
    axis.plot(xs, [100 * sum(seconds[x]) / len(seconds[x]) for x in xs], lw=1)
    for at, what in marks:
        if what.startswith("kill"):
            axis.axvline(at, color="red", lw=0.8, alpha=0.6)
            axis.annotate(what.removeprefix("kill "), (at, 2), fontsize=7, rotation=90)
    axis.set(xlabel="seconds", ylabel="% answered 2xx inside budget", ylim=(0, 101),
             title="Availability per second under faults on a schedule")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def test_the_soak_with_faults_on_a_schedule_stays_available(
        on_cluster: StartService, cluster_topology: ClusterTopology, report_dir: Path) -> None:
    run = f"av{uuid.uuid4().hex[:6]}"
    stream = on_cluster("stream", MLSD_STREAM_CONCERNS="watch-features")
    ingest = on_cluster("ingest")
    fraud = on_cluster("fraud", MLSD_FRAUD_WORKERS="2")
    recommender = on_cluster("recommender", MLSD_RECOMMENDER_WORKERS="2")
    workers = {"fraud": fraud.process.pid, "recommender": recommender.process.pid}
    for parent in workers.values():
        await_workers(parent, 2)
    for service in (fraud, recommender):  # both workers through their start-up (warm-up)
        await_started(service.log, 2)
    kafka_jvm = {n: jvm_options(cluster_topology.servers[n].process.pid)
                 for n in cluster_topology.kafka_names}  # C1 only or not (ADR 0011)
    marks: list[tuple[float, str]] = []
    fencings: list[dict[str, Any]] = []
    spooled_202s = 0
    load_started: list[float] = []  # the epoch of the first request's send

    async def post_events(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        nonlocal spooled_202s
        response = await client.post(f"{ingest.url}/v1/events", json=body)
        if response.status_code == 202 and response.json().get("spooled"):
            spooled_202s += 1  # held in ingest's spool, forwarded once the brokers acknowledge
        return response

    async def send(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        if n == 0:
            load_started.append(time.time())
        service, i = SERVICES[n % 3], n // 3
        seen: dict[str, Any] = {}  # the last answer's own flags (tests/chaos/misses.py)

        async def read(call: Awaitable[httpx.Response]) -> httpx.Response:
            response = await call
            seen.update(answer_flags(service, response))
            return response

        if service == "ingest":
            body = {"events": [{"id": f"{run}-{i}", "type": "watch", "source": "soak",
                                "time": datetime.now(UTC).isoformat(),
                                "data": {"user_id": f"u{run}{i % 50}",
                                         "content_id": f"t{i % 200 + 1}",
                                         "watch_seconds": 600, "completed": False}}]}
            status, flags = await retry_after(lambda: read(post_events(client, body)),
                                              INGEST_ATTEMPTS)
        elif service == "fraud":
            body = transaction(run, i)
            status, flags = await retry_once(
                lambda: read(client.post(f"{fraud.url}/v1/score", json=body)))
        else:
            status, flags = await retry_once(lambda: read(client.get(
                f"{recommender.url}/v1/recommendations/u{run}{i % 50}", params={"k": 10},
                headers={"Cache-Control": "no-cache"})))
        return status, {"service": service, **flags, **seen}

    started = datetime.now(UTC)
    probes = Probes(cluster_topology, {
        **{n: (lambda n=n: {cluster_topology.servers[n].process.pid})
           for n in (*cluster_topology.kafka_names, *cluster_topology.redis_names)},
        "stream": lambda: {stream.process.pid}, "ingest": lambda: {ingest.process.pid},
        **{name: (lambda parent=parent: {parent, *live_workers(parent)})
           for name, parent in workers.items()},
        "load client": lambda: {os.getpid()}})
    with LoadAverage() as load:
        answers = open_loop(send, 3 * RATE, SOAK_S,
                            schedule(cluster_topology, workers, marks, fencings), timeout_s=10.0)
    seen = probes.stop(load_started[0] - probes.start)
    misses = described_misses(answers, marks, seen)
    results = {"availability": availability(answers), "goal": GOAL,
               "load_average_during": load.summary(),
               "faults": [{"at_s": round(at, 1), "what": what} for at, what in marks],
               "misses_by_fault": misses_by_fault(answers, marks),
               "ingest_202s_spooled": spooled_202s,
               "broker_fencings": fencings,
               "live_brokers_fenced": live_brokers_fenced(cluster_topology, started, fencings),
               "misses_by_cause": by_cause(misses, SERVICES),
               "probes": probe_summary(seen), "misses": misses,
               "probed": seen}
    name = "availability_soak" if SOAK_S >= 600 else f"availability_soak_trial_{SOAK_S:.0f}s"
    name += "" if FAULTS else "_no_faults"
    plot(answers, marks, report_dir / f"{name}.png")
    write_report(report_dir, name,
                 "open-loop load on ingest, fraud and the recommender with a broker, a Redis "
                 "master and a worker of fraud and of the recommender killed on a schedule; "
                 "availability = share answered 2xx inside budget",
                 started, {"soak_s": SOAK_S, "faults": FAULTS, "rate_per_service_per_s": RATE,
                           "cycle_s": CYCLE_S, "budget_ms": BUDGET_MS,
                           "client_retries": "fraud and the recommender: one, on a transport "
                                             "error only; ingest: a 503 with Retry-After sent "
                                             f"again after it, up to {INGEST_ATTEMPTS} "
                                             "attempts (the headline counts the first answer; "
                                             "with_ingest_retry the last)",
                           "ingest_attempts": INGEST_ATTEMPTS,
                           "ingest_shed_after_s": IngestSettings.model_fields[
                               "ingest_shed_after_s"].default,
                           "ingest_spool": IngestSettings().ingest_spool_enabled,
                           "ingest_spool_after_s": IngestSettings().ingest_spool_after_s,
                           "kafka_node_jvm_options": kafka_jvm},
                 results, answers)
    assert results["availability"]["all"]["share"] >= GOAL, results["availability"]
