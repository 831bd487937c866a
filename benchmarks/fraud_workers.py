"""Fraud HTTP with 1 and 2 worker processes beside the bare-endpoint floor, open loop, one run.

    PYTHONPATH=. .venv/bin/python benchmarks/fraud_workers.py --models .state/models \
        --world .state/worlds/transactions [--rates 200,400,800] [--step-duration 10s]

Starts its own redis-server and Kafka broker (tests' harness), `python -m services.fraud` twice
(MLSD_FRAUD_WORKERS=1 and =2, each on a free port, both up for the whole run) and floor.py, then
steps the three through the same offered rates with load-tests/sweep.py's driver: at each rate
the same arrival times and the same transactions for each target, the order rotating per step so
that noise on the shared machine hits all alike. A target stops as sweep.py stops one (two steps
over the 50 ms budget in a row, or one over 100 ms). Redis holds no history (not seeded): every
card is new, the same for both worker counts. Writes benchmarks/results/fraud_workers.json.
PYTHONPATH=. makes `services` this checkout's for the script and the services it starts (a
script's sys.path begins at its own folder, not at the repository root).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load-tests"))

import openloop  # load-tests/ is not a package: on sys.path above
import sweep
import viewers

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.loopback import free_port
from services.common.probe import process_ready
from services.devstack.servers import REPO_ROOT, start_kafka, start_redis

logger = logging.getLogger("fraud_workers")
OUT = REPO_ROOT / "benchmarks" / "results" / "fraud_workers.json"


@contextmanager
def fraud_service(workers: int, env: dict[str, str], logs: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (logs / f"fraud-{workers}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.fraud"], cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env, "MLSD_FRAUD_PORT": str(port), "MLSD_FRAUD_WORKERS": str(workers)})
    try:
        if not process_ready(f"{url}/readyz", process, 120):
            raise RuntimeError(f"fraud with {workers} workers did not start: see {log.name}")
        yield url
    finally:
        process.terminate()
        process.wait(40)
        log.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s/%(name)s: %(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True, help="a trained model repository")
    parser.add_argument("--world", type=Path, required=True, help="the transactions world")
    parser.add_argument("--rates", type=sweep.parse_rates,
                        default=(200, 400, 600, 800, 1000, 1250, 1500, 2000))
    parser.add_argument("--step-duration", default="10s")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = sweep.Settings(args.rates, openloop.parse_duration(args.step_duration), 1.0,
                              openloop.POISSON, 1, 5.0, 100)
    design = openloop.DESIGNS["fraud"]
    started, at_start = datetime.now(UTC), sweep.machine()
    with tempfile.TemporaryDirectory(prefix="fraud-workers-") as scratch:
        work = Path(scratch)
        redis, kafka = start_redis(work), start_kafka(work)
        try:
            ensure_topics(kafka.address, platform_topics(3))
            env = {"MLSD_REDIS_URL": redis.address, "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                   "MLSD_MODEL_REPOSITORY": str(args.models.resolve()),
                   "MLSD_LOG_LEVEL": "WARNING"}
            with (sweep.floor_server() as floor, fraud_service(1, env, work) as one,
                  fraud_service(2, env, work) as two):
                # each target its own traffic from the same seed: the same transactions
                targets = [sweep.Target(kind, host, design.calls(
                    args.world, random.Random(settings.seed), tally), tally)
                    for kind, host in (("floor", floor), ("1 worker", one), ("2 workers", two))
                    for tally in [viewers.Tally()]]
                sweep.sweep_design("fraud", design, targets, settings)
        finally:
            kafka.stop()
            redis.stop()
    result = {
        "what": "POST /v1/score open loop (Poisson arrivals): the bare-endpoint floor (floor.py, "
                "one process) and the fraud service with MLSD_FRAUD_WORKERS=1 and =2, the same "
                "schedule and transactions per rate, order rotating per step",
        "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
        "machine": {"at_start": at_start, "at_end": sweep.machine()},
        "versions": sweep.versions(), "commit": sweep.git_commit(),
        "settings": {**asdict(settings), "budget_ms": design.p99_budget_ms,
                     "redis": "empty (not seeded): every card new",
                     "models": str(args.models), "world": str(args.world)},
        "targets": {t.kind: {"knee_rps": sweep.knee(t.steps), "stopped": t.stopped,
                             "steps": [asdict(step) for step in t.steps]} for t in targets},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for target in targets:
        logger.info("KNEE %s: %s req/s (%s)", target.kind, sweep.knee(target.steps),
                    target.stopped or "ran out of rates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
