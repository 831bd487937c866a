"""The fraud state's script calls, per entity or gathered: CPU per transaction, side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/fraud_state_calls.py [--batch 500] [--batches 200]

The scorer records and reads a batch of transactions with one pipeline of script calls, then
remembers its decisions with another. This measures what sending one call per entity (six a
transaction, and one per decision) costs against gathering a batch's entities of a view into a
few calls (services/designs/fraud/redis_state.py, ENTITIES_PER_CALL), side by side on one
redis-server it starts: two namespaces get the same history (the default transaction world,
every transaction recorded), then the last week's transactions go in batches of --batch in event
order through FraudScorer.score (the stream's and the HTTP path's pipeline, the local ONNX
model), each batch to both namespaces, the mode order alternating batch by batch. Per mode:
Redis's CPU (INFO cpu, main thread, before and after each batch), the scorer's CPU (process
time: state, features, rules, model, explanations) and the wall time. In the per-entity mode the
decisions' GET and SET NX go as one script call each (before gathering they were plain commands,
a little cheaper for Redis, about as dear for the client). The floor in the same run:
one PING round trip. Two more modes show what later changes saved, each against the gathered
calls without it: trimming the sorted sets in one call of TRIM_EVERY (`gathered_trim_every_call`
trims in every call), and the client's checked copies of the logs with hourly TTL refreshes
(services/designs/fraud/copies.py; `gathered_no_copies` reads every log whole and refreshes
every TTL). And (session 12) the script pipelines sent directly, packed by hiredis, against
redis-py's Pipeline (`gathered_redis_py_pipeline`), which matters most in small batches:
`--batch 5 --modes gathered gathered_redis_py_pipeline`. Every mode scores the same warm-up
batches first (untimed), so copies are as warm as in a running scorer. Summary to
benchmarks/results/fraud_state_calls.json (--out for another file).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import numpy as np
import redis
from tqdm import tqdm

from services.common import redis_scripts
from services.common.bus.envelope import decode_event
from services.common.machine import describe
from services.common.models import create_model_client
from services.common.telemetry import Metrics
from services.designs.fraud import commands, redis_state
from services.designs.fraud.copies import StateCopies
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.fraud.scripts import TRIM_EVERY
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.payloads import TransactionData
from services.devstack.servers import redis_url
from services.fraud.metrics import FraudMetrics
from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from services.fraud.state_store import RedisFraudStore
from services.fraud.wiring import build_scorer
from services.seeder.history import transaction_messages
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

logger = logging.getLogger("fraud_state_calls")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = REPO_ROOT / "benchmarks" / "results" / "fraud_state_calls.json"
MODES = {"per_entity": 1, "gathered": redis_state.ENTITIES_PER_CALL,
         "gathered_trim_every_call": redis_state.ENTITIES_PER_CALL,
         "gathered_no_copies": redis_state.ENTITIES_PER_CALL,
         "gathered_redis_py_pipeline": redis_state.ENTITIES_PER_CALL}
# How often a call trims the sorted sets in each mode (commands.TRIM_EVERY): trimming in every
# call is the state as it was before trims went to one call in TRIM_EVERY.
TRIM = {"per_entity": TRIM_EVERY, "gathered": TRIM_EVERY,
        "gathered_trim_every_call": 1, "gathered_no_copies": TRIM_EVERY,
        "gathered_redis_py_pipeline": TRIM_EVERY}
# The logs a mode's client keeps copies of (StateCopies.max_logs): only `gathered` keeps any, as
# the scorer does by default; the others are the calls as they were before copies.
COPIES = {"per_entity": 0, "gathered": 20_000, "gathered_trim_every_call": 0,
          "gathered_no_copies": 0, "gathered_redis_py_pipeline": 20_000}


def redis_py_pipeline(client: redis.Redis, commands: Sequence[tuple[object, ...]]) -> list[object]:
    """How script calls went before session 12's direct send: through redis-py's Pipeline."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
    return list(pipe.execute(raise_on_error=False))


# What each mode sends its script pipelines with (redis_scripts._send_direct): the direct send
# unless the mode is the one before it.
SEND = {mode: redis_py_pipeline if mode == "gathered_redis_py_pipeline" else None
        for mode in MODES}
WARM_UP_BATCHES = 10


@dataclass
class Times:
    transactions: int = 0
    redis_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    wall_s: float = 0.0
    batch_wall_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        per_tx = 1e6 / self.transactions
        return {"transactions": self.transactions,
                "redis_cpu_us_per_tx": round(self.redis_cpu_s * per_tx, 2),
                "client_cpu_us_per_tx": round(self.client_cpu_s * per_tx, 2),
                "wall_us_per_tx": round(self.wall_s * per_tx, 2),
                "batch_wall_p50_ms": round(float(np.percentile(self.batch_wall_ms, 50)), 3),
                "batch_wall_p99_ms": round(float(np.percentile(self.batch_wall_ms, 99)), 3)}


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def transactions(seed: int) -> list[TransactionData]:
    world = generate_transactions(TransactionWorldConfig(seed=seed))
    messages = transaction_messages(world.transactions, timedelta(0),
                                    now=datetime(2100, 1, 1, tzinfo=UTC))
    events = (decode_event(m.value) for m in messages)
    return [TransactionData.model_validate(e.data) for e in events if e.type == "transaction"]


def scorer(url: str, client: redis.Redis, namespace: str) -> FraudScorer:
    settings = FraudSettings(redis_url=url, model_backend="local",
                             model_repository=REPO_ROOT / ".state/models")
    model = create_model_client(
        settings, expected_features={settings.fraud_model_name: FRAUD_FEATURE_NAMES})
    return build_scorer(settings, FraudMetrics(Metrics(f"bench_{namespace}")),
                        RedisFraudStore(client, namespace, StateCopies(COPIES[namespace])),
                        model)


def timed(client: redis.Redis, score: FraudScorer, batch: Sequence[TransactionData],
          mode: str, times: Times) -> None:
    send = SEND[mode]
    with (mock.patch.object(redis_state, "ENTITIES_PER_CALL", MODES[mode]),
          mock.patch.object(commands, "TRIM_EVERY", TRIM[mode]),
          mock.patch.object(redis_scripts, "_send_direct",
                            send if send is not None else redis_scripts._send_direct)):
        cpu, process, wall = redis_cpu(client), time.process_time(), time.perf_counter()
        score.score(batch, "stream")
        elapsed = time.perf_counter() - wall
        times.client_cpu_s += time.process_time() - process
        times.redis_cpu_s += redis_cpu(client) - cpu
    times.wall_s += elapsed
    times.batch_wall_ms.append(elapsed * 1000)
    times.transactions += len(batch)


def ping_us(client: redis.Redis, n: int = 2000) -> float:
    started = time.perf_counter()
    for _ in range(n):
        client.ping()
    return (time.perf_counter() - started) / n * 1e6


def run(args: argparse.Namespace) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    txns = transactions(args.seed)
    last_week = txns[-args.batch * args.batches:]
    history = txns[:len(txns) - len(last_week)]
    modes = {mode: MODES[mode] for mode in args.modes}
    times = {mode: Times() for mode in modes}
    with redis_url(None) as url:
        client = redis.Redis.from_url(url, socket_timeout=10.0)
        for i in tqdm(range(0, len(history), args.batch), desc="history", unit="batch"):
            for mode in modes:
                with mock.patch.object(commands, "TRIM_EVERY", TRIM[mode]):
                    RedisFraudState(client, mode).record(history[i:i + args.batch])
        scorers = {mode: scorer(url, client, mode) for mode in modes}
        # the model session's first calls, the references, the copies of the logs
        warm_up = history[-args.batch * WARM_UP_BATCHES:]
        for mode, warm in scorers.items():
            with mock.patch.object(commands, "TRIM_EVERY", TRIM[mode]):
                for i in range(0, len(warm_up), args.batch):
                    warm.score(warm_up[i:i + args.batch], "stream")
        floor = ping_us(client)
        for k, i in enumerate(tqdm(range(0, len(last_week), args.batch), desc="timed",
                                   unit="batch")):
            order = list(modes) if k % 2 == 0 else list(modes)[::-1]
            for mode in order:
                timed(client, scorers[mode], last_week[i:i + args.batch], mode, times[mode])
        version = client.info("server")["redis_version"]
        client.close()
    result = {
        **describe(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "redis": version, "redis_py": redis.__version__,
        "load_avg_1m": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "load": f"{len(history)} transactions of history in each of {len(modes)} namespaces, then "
                f"{len(last_week)} in batches of {args.batch}, each batch to every one (order "
                "alternating); one scorer thread, one redis-server",
        "how": "FraudScorer.score per batch (build_scorer, local ONNX model, Redis store); Redis "
               "CPU from INFO cpu (main thread) around each batch, the scorer's from "
               "process_time",
        "entities_per_call": modes, "trim_every": {m: TRIM[m] for m in modes},
        "log_copies": {m: COPIES[m] for m in modes},
        "warm_up": f"{len(warm_up)} transactions scored untimed in each mode first",
        "ping_round_trip_us": round(floor, 1),
        "modes": {mode: t.summary() for mode, t in times.items()},
    }
    return result


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="the modes to measure side by side (default: all)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    result = run(args)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    logger.info("%s", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
