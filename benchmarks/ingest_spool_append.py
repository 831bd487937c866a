"""What ingest's spool costs a batch: one durable append (SQLite WAL, synchronous=FULL).

    .venv/bin/python benchmarks/ingest_spool_append.py [--appends 2000] [--events 1 10 100]

Appends batches of watch events shaped as ingest publishes them to a fresh spool file on this
machine's disk (under .state/, the default spool's disk), interleaving the batch sizes, and
times each append from the call to its return (after the fsync), then the forwarder's read of a
500-event head and its delete. Writes benchmarks/results/ingest_spool_append.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from services.common.machine import describe as describe_machine
from services.ingest.batching import Valid, validate_event
from services.ingest.spool import Spool, SpoolLimits

ROOT = Path(__file__).resolve().parents[1]


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50": round(statistics.median(ordered), 3),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
            "max": round(ordered[-1], 3), "samples": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000, help="appends per batch size")
    parser.add_argument("--events", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/ingest_spool_append.json")
    args = parser.parse_args()
    raw = {"id": "w", "type": "watch", "source": "bench", "time": "2026-12-06T00:00:00Z",
           "data": {"user_id": "u1", "content_id": "t1", "watch_seconds": 60,
                    "completed": False}}
    valid = validate_event(0, raw)
    assert isinstance(valid, Valid)
    (ROOT / ".state").mkdir(exist_ok=True)
    started, load_before = datetime.now(UTC), os.getloadavg()
    timings: dict[int, list[float]] = {n: [] for n in args.events}
    head_ms: list[float] = []
    delete_ms: list[float] = []
    with tempfile.TemporaryDirectory(dir=ROOT / ".state") as folder:
        spool = Spool(Path(folder) / "spool.sqlite3", SpoolLimits(10**9, 3600.0))
        spool.open()
        for _ in range(args.appends):
            for n in args.events:
                t = time.perf_counter()
                spool.append([valid.message] * n, ["watch"] * n)
                timings[n].append((time.perf_counter() - t) * 1000)
        while spool.depth():
            t = time.perf_counter()
            head = spool.head(500)
            head_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            spool.delete([s.seq for s in head])
            delete_ms.append((time.perf_counter() - t) * 1000)
        spool.close()
    result = {
        "what": "ingest's spool: one append (fsynced commit) per batch size, then the "
                "forwarder's 500-event head read and delete, on this machine's disk",
        "started": started.isoformat(), "machine": describe_machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "event_bytes": len(valid.message.value),
        "append_ms": {str(n): percentiles(ms) for n, ms in timings.items()},
        "head_500_ms": percentiles(head_ms), "delete_500_ms": percentiles(delete_ms),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("append_ms", "head_500_ms", "delete_500_ms")},
                     indent=1))


if __name__ == "__main__":
    main()
