"""In-process assignment time: assign(definition, unit_id) per call, the recommender's A/B budget.

    .venv/bin/python benchmarks/experiments_assignment.py [--units 200000] [--repeats 5]
                                                         [--redis-url redis://...]

Each case assigns the same distinct unit ids (u0, u1, ...) in a tight loop; the mean is the best
of `repeats` loops (the least disturbed by the shared machine). Percentiles time every call on
its own with perf_counter_ns, so they include the timer's own cost (printed as "timer").
The exposure row is ExposureLog.record() for a pair already remembered in process: the cost on
every request after a unit's first. The first exposure of a unit costs one Redis round trip
(SET NX): timed on a throwaway redis-server (or --redis-url; keys go under the "bench" namespace).
Raw numbers go to reports/experiments-assignment/<UTC>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import redis

from services.common.bus.ports import OutboundMessage
from services.designs.experiments.assignment import assign
from services.designs.experiments.definitions import ExperimentDefinition, load_definitions_file
from services.designs.experiments.exposures import ExposureLog
from services.devstack.servers import redis_url

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"  # never collides with the stack's "fs" keys when pointed at a shared Redis
FIRST_EXPOSURES = 20_000
PERCENTILES = (50, 99, 99.9)


def cases(file: Sequence[ExperimentDefinition]) -> dict[str, ExperimentDefinition]:
    rec = next(d for d in file if d.key == "rec-algorithm")
    namespaced = next(d for d in file if d.namespace is not None)
    return {
        "rec-algorithm (hash v2, 2 variations, coverage 1)": rec,
        "hash v1": rec.model_copy(update={"hash_version": 1}),
        "namespace + coverage 0.2 (running)": namespaced.model_copy(
            update={"status": "running", "forced_variations": {}}),
        "5 variations, coverage 0.5": rec.model_copy(update={"coverage": 0.5, "variations": [
            {"name": f"v{i}", "weight": 0.2, "payload": {}} for i in range(5)]}),
    }


def mean_ns(call: Callable[[str], object], units: Sequence[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for unit in units:
            call(unit)
        best = min(best, (time.perf_counter_ns() - start) / len(units))
    return best


def per_call_ns(call: Callable[[str], object], units: Sequence[str]) -> np.ndarray[Any, Any]:
    clock = time.perf_counter_ns
    samples = np.empty(len(units), dtype=np.int64)
    for i, unit in enumerate(units):
        start = clock()
        call(unit)
        samples[i] = clock() - start
    return samples


class NoRedis:
    """The remembered path never reaches Redis; anything else would be a bug here."""

    def pipeline(self, transaction: bool = False) -> object:
        raise AssertionError("a remembered exposure must not call Redis")


class Discard:
    def submit(self, message: OutboundMessage) -> bool:
        return True


def assigner(definition: ExperimentDefinition) -> Callable[[str], object]:
    return lambda unit: assign(definition, unit)


def measure(name: str, call: Callable[[str], object], units: Sequence[str],
            repeats: int) -> dict[str, Any]:
    call(units[0])  # warm caches (the definition's ranges, the seed's hash)
    mean = mean_ns(call, units, repeats)
    samples = per_call_ns(call, units)
    quantiles = {p: float(np.percentile(samples, p)) for p in PERCENTILES}
    print(f"{name:52s} mean {mean / 1000:6.2f} us   " + "   ".join(
        f"p{p} {ns / 1000:6.2f} us" for p, ns in quantiles.items()))
    return {"case": name, "calls": len(units), "mean_ns": round(mean, 1),
            **{f"p{p}_ns": ns for p, ns in quantiles.items()}}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--redis-url", help="default: start a throwaway redis-server")
    args = parser.parse_args(argv)

    file = load_definitions_file(REPO_ROOT / "config" / "experiments" / "experiments.toml")
    units = [f"u{i}" for i in range(args.units)]
    timer = np.median(per_call_ns(lambda unit: None, units[:50_000]))
    gc.freeze()  # as the services do after start-up
    print(f"python {platform.python_version()}, {args.units} distinct units, best of "
          f"{args.repeats}; timer (an empty call, timed alone) {timer:.0f} ns")
    rows = [measure(name, assigner(definition), units, args.repeats)
            for name, definition in cases(file).items()]

    rec = cases(file)["rec-algorithm (hash v2, 2 variations, coverage 1)"]
    exposures = ExposureLog(cast(Any, NoRedis()), Discard(), memory_size=len(units))
    remembered = [assign(rec, unit) for unit in units]
    for assignment, unit in zip(remembered, units, strict=True):
        exposures._memory.add((assignment.experiment, unit))
    by_unit = dict(zip(units, remembered, strict=True))
    rows.append(measure("ExposureLog.record, pair already remembered",
                        lambda unit: exposures.record(by_unit[unit], unit), units,
                        args.repeats))
    rows.append(measure("assign + record (every request after the first)",
                        lambda unit: exposures.record(assign(rec, unit), unit), units,
                        args.repeats))

    with redis_url(args.redis_url) as url:
        client = redis.Redis.from_url(url)
        # Nothing remembered in process (memory_size=0): every call asks Redis, as a unit's
        # first exposure does; SET NX costs the same round trip whether it wins or not.
        asking = ExposureLog(client, Discard(), NAMESPACE, memory_size=0)
        fresh = units[:FIRST_EXPOSURES]
        rows.append(measure("ExposureLog.record, asking Redis (a unit's first)",
                            lambda unit: asking.record(by_unit[unit], unit), fresh, 1))
        for key in client.scan_iter(f"{NAMESPACE}:*"):
            client.delete(key)
        client.close()

    out = REPO_ROOT / "reports" / "experiments-assignment" / (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": sys.version, "machine": platform.machine(),
                               "timer_ns": float(timer), "rows": rows}, indent=2))
    print(f"raw numbers: {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
