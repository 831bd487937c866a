"""What each miss of a chaos run was: the request, its answer, and what went on around it.

A miss is an answer that was not a 2xx inside its service's budget. Each one is described by
what the client saw (service, when it was sent, latency, status, the answer's own flags and
the service's own processing time) and by what the probes saw then (services/devstack/probes.py: a
fault's window, a Redis node forking, a broker's GC pause, each process's CPU); `cause` is the
first of those that applies, in the order CAUSES lists them. Pure: the probes' records in,
dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tests.chaos.load import Answer

# In this order: a miss gets the first that applies.
CAUSES = ("fault", "start of load", "redis fork", "kafka gc pause", "cores saturated",
          "other work on the machine", "unexplained")
START_S = 10.0  # the load's first seconds: each worker's first requests
SATURATED = 0.95  # of the machine's cores busy in the second a request ended
OTHER_WORK = 0.25  # of the machine's cores used by processes outside the run, that second
GC_PAUSE_MS = 10.0  # a broker's pause shorter than this is not counted as a cause
ON_KAFKA = frozenset({"ingest"})  # whose 2xx waits for the brokers (the others publish off path)


def answer_flags(service: str, response: httpx.Response) -> dict[str, Any]:
    """What an answer says about itself: fraud's `degraded`, the recommender's fallbacks,
    ingest's spooled events, and each service's own processing time (`server_ms`)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    if service == "fraud":
        return {"degraded": bool(body.get("degraded")),
                "server_ms": body.get("processing_time_ms")}
    if service == "recommender":
        fallbacks = list(body.get("fallbacks") or [])
        return {"fallback": bool(fallbacks), "fallbacks": fallbacks,
                "served_from": body.get("served_from"),
                "server_ms": body.get("processing_time_ms")}
    return {"spooled": bool(body.get("spooled"))}


def overlapping(windows: Sequence[Mapping[str, Any]], start_s: float, end_s: float
                ) -> list[Mapping[str, Any]]:
    """The windows (from_s, to_s) that share a moment with [start_s, end_s]."""
    return [w for w in windows if w["from_s"] <= end_s and w["to_s"] >= start_s]


def cpu_then(samples: Sequence[Mapping[str, Any]], end_s: float) -> Mapping[str, Any] | None:
    """The CPU sample whose second covers a request's end (the first taken after it)."""
    return next((s for s in samples if s["t_s"] >= end_s), samples[-1] if samples else None)


def describe(answer: Answer, budget_ms: float, fault: str | None,
             forks: Mapping[str, Sequence[Mapping[str, Any]]],
             gc: Mapping[str, Sequence[Mapping[str, Any]]],
             cpu: Sequence[Mapping[str, Any]], cores: int) -> dict[str, Any]:
    """One miss, with what the probes saw while it was in flight, and its cause."""
    end_s = answer.sent_s + answer.latency_ms / 1000
    forking = [{"node": node, "kind": f["kind"], "from_s": f["from_s"], "to_s": f["to_s"]}
               for node, windows in forks.items()
               for f in overlapping(windows, answer.sent_s, end_s)]
    paused = [{"broker": broker, "ms": p["ms"], "to_s": p["to_s"]}
              for broker, pauses in gc.items()
              for p in overlapping(pauses, answer.sent_s, end_s) if p["ms"] >= GC_PAUSE_MS]
    sample = cpu_then(cpu, end_s)
    server_ms = answer.flags.get("server_ms")
    miss = {
        "service": answer.flags.get("service"), "sent_s": round(answer.sent_s, 2),
        "latency_ms": round(answer.latency_ms, 1), "status": answer.status,
        "server_ms": server_ms,
        "where": ("unknown" if server_ms is None else
                  "in the handler" if float(server_ms) >= budget_ms else
                  "outside the handler"),
        "flags": {k: v for k, v in answer.flags.items()
                  if k in ("degraded", "fallbacks", "spooled", "retried", "error") and v},
        "fault": fault, "redis_forks": forking, "kafka_gc_pauses": paused,
        "cpu": None if sample is None else {
            "t_s": sample["t_s"], "busy": sample["busy"], "steal": sample["steal"],
            "others": sample["groups"].get("others", 0.0),
            "top": dict(sorted(sample["groups"].items(), key=lambda g: -g[1])[:4])},
    }
    miss["cause"] = cause(miss, cores)
    return miss


def cause(miss: Mapping[str, Any], cores: int) -> str:
    """The first of CAUSES the miss's record shows."""
    cpu = miss["cpu"]
    found = {"fault": miss["fault"] is not None,
             "start of load": miss["sent_s"] < START_S,
             "redis fork": bool(miss["redis_forks"]),
             "kafka gc pause": bool(miss["kafka_gc_pauses"]) and miss["service"] in ON_KAFKA,
             "cores saturated": cpu is not None and cpu["busy"] >= SATURATED * cores,
             # a record made before "others" was kept has it among the top groups, if high
             "other work on the machine": cpu is not None
             and cpu.get("others", cpu["top"].get("others", 0.0)) >= OTHER_WORK * cores}
    return next((c for c in CAUSES if found.get(c)), "unexplained")


def by_cause(misses: Sequence[Mapping[str, Any]], services: Sequence[str]
             ) -> dict[str, dict[str, int]]:
    """Misses counted by cause and service (every cause listed, zeros included)."""
    table = {c: dict.fromkeys(services, 0) for c in CAUSES}
    for miss in misses:
        table[miss["cause"]][str(miss["service"])] += 1
    return table
