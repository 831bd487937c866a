"""`make retrain-fraud` on the dev stack's data: `make models`, `make seed`, the retrain, timed.

    .venv/bin/python benchmarks/fraud_retrain_dev_stack.py [--compare-days 38]

What a user's stack holds after `make demo` / `make run` + `make seed`, on its own servers on free
ports (never the default-port stack): redis-server, a Kafka broker, PostgreSQL, and the processes
the seed goes through, the stream processor (every concern) and the lake sink. Then:

    make models      python -m services.trainer            the dev world (66 days) and v1
    make seed        python -m services.seeder             its history through Kafka: online
                                                           state (waited for) and the lake
    make retrain-fraud  python -m services.trainer.fraud_retrain   as of now: burn-in, the
                                                           protocol's weeks, the gate vs v1

`--compare-days 38` also seeds the same world's last 38 days (the seed before the dev world
grew), each seed on a fresh stack of its own, alternating for `--rounds`: the seed's cost side by
side, and that retrain's refusal. The machine is shared, so beside wall time each seed records
the CPU seconds of every process of its stack (servers, stream processor, lake sink, the seeder)
and the load average around it. `make models`' fraud part is timed on the 58-day and the
66-day world in this process.

Writes benchmarks/results/fraud_retrain_dev_stack.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import onnxruntime
import psutil
import sklearn

from services.common.bus.kafka_bus import group_lags
from services.common.lake.sql import open_lake
from services.common.loopback import free_port
from services.common.machine import describe
from services.common.models import ModelRepository
from services.common.probe import process_ready
from services.common.processes import stop_process
from services.designs.model_features import LAKE_DAYS_FOR_A_RETRAIN
from services.devstack.servers import (
    REPO_ROOT,
    ServerProcess,
    start_kafka,
    start_postgres,
    start_redis,
)
from services.lake.events import LAKE_TOPICS
from services.trainer.fraud import train_fraud
from services.trainer.pipeline import SCALES
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

OUT = REPO_ROOT / "benchmarks/results/fraud_retrain_dev_stack.json"


def say(message: str) -> None:
    print(f"[retrain-dev {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def timed_run(args: list[str], env: dict[str, str], log: Path) -> tuple[float, int, str]:
    """A make target's module as a process: seconds, exit code, its output (also in `log`)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False)
    log.write_text(done.stdout + done.stderr)
    return time.monotonic() - started, done.returncode, done.stdout + done.stderr


@dataclass
class Stack:
    """Servers and processes on free ports, one workdir; stop() ends every one of them."""

    workdir: Path
    servers: list[ServerProcess] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def launch(self, module: str, port_variable: str) -> None:
        port = free_port()
        log = self.workdir / f"{module}.log"
        process = subprocess.Popen([sys.executable, "-m", f"services.{module}"], cwd=REPO_ROOT,
                                   env={**self.env, port_variable: str(port)},
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        if not process_ready(f"http://127.0.0.1:{port}/readyz", process, 180):
            raise RuntimeError(f"{module} did not get ready: {log}")

    def cpu_seconds(self) -> float:
        """User and system CPU of every server and process of the stack so far."""
        total = 0.0
        for popen in [*(s.process for s in self.servers), *self.processes]:
            try:
                tree = psutil.Process(popen.pid)
                for each in [tree, *tree.children(recursive=True)]:
                    times = each.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process, 40)
        for server in reversed(self.servers):
            server.stop()
            if "data_root" in server.extra:
                shutil.rmtree(server.extra["data_root"], ignore_errors=True)


def start_stack(workdir: Path, models: Path) -> Stack:
    """Redis, Kafka, PostgreSQL, then the stream processor and the lake sink on them."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir)
    try:
        redis_server, kafka = start_redis(workdir), start_kafka(workdir)
        stack.servers += [redis_server, kafka]
        postgres = start_postgres(workdir)
        stack.servers.append(postgres)
        stack.env = {**os.environ, "MLSD_REDIS_URL": redis_server.address,
                     "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                     "MLSD_POSTGRES_PORT": postgres.extra["port"],
                     "MLSD_MODEL_REPOSITORY": str(models / "models"),
                     "MLSD_WORLD_DIR": str(models / "worlds"),
                     "MLSD_REPORT_DIR": str(models / "reports"),
                     "MLSD_LAKE_ROOT": str(workdir / "lake"), "MLSD_DATASET": "synthetic",
                     "MLSD_LOG_LEVEL": "WARNING"}
        stack.launch("stream", "MLSD_STREAM_PORT")
        stack.launch("lake", "MLSD_LAKE_PORT")
    except BaseException:
        stack.stop()
        raise
    return stack


def lake_caught_up(stack: Stack, timeout_s: float = 600) -> float:
    """Seconds until the lake sink's group has read every topic it keeps (and a flush)."""
    started = time.monotonic()
    bootstrap = stack.env["MLSD_KAFKA_BOOTSTRAP_SERVERS"]
    while time.monotonic() - started < timeout_s:
        if group_lags(bootstrap, {"lake-sink": list(LAKE_TOPICS)})["lake-sink"] == 0:
            time.sleep(12)  # the sink's flush interval (10 s), with room
            return time.monotonic() - started
        time.sleep(1.0)
    raise TimeoutError(f"the lake sink did not catch up within {timeout_s:.0f} s")


def lake_span(lake: Path) -> dict[str, Any]:
    with open_lake(lake) as con:
        row = con.execute("SELECT count(*), min(time_ms), max(time_ms) FROM transactions"
                          ).fetchone()
        labels = con.execute("SELECT count(*) FROM labels").fetchone()
    assert row is not None and labels is not None
    rows, first, last = row
    return {"transactions": int(rows), "labels": int(labels[0]),
            "first": datetime.fromtimestamp(first / 1000, UTC).isoformat(timespec="seconds"),
            "last": datetime.fromtimestamp(last / 1000, UTC).isoformat(timespec="seconds"),
            "days": round((last - first) / 86_400_000, 2)}


def seed_and_retrain(workdir: Path, models: Path, days: float) -> dict[str, Any]:
    """A fresh stack: `make seed` of `days` (timed, waits for the stream as make seed does), the
    lake caught up, then `make retrain-fraud` (timed) with its report."""
    stack = start_stack(workdir, models)
    try:
        say(f"seed: the last {days:g} days of transactions (and the viewing history)")
        load_before, cpu_before = list(os.getloadavg()), stack.cpu_seconds()
        seeder_before = _children_cpu()
        seed_s, code, output = timed_run(
            ["services.seeder", "--transaction-days", str(days)], stack.env,
            workdir / "seed.log")
        if code != 0:
            raise RuntimeError(f"the seeder failed ({code}): {output[-2_000:]}")
        cpu = {"stack_s": round(stack.cpu_seconds() - cpu_before, 1),
               "seeder_s": round(_children_cpu() - seeder_before, 1)}
        load_after = list(os.getloadavg())
        lake_s = lake_caught_up(stack)
        span = lake_span(workdir / "lake")
        say(f"seeded in {seed_s:.0f} s, the lake {lake_s:.0f} s later: {span}")
        report = workdir / "fraud-gate.json"
        retrain_s, code, output = timed_run(
            ["services.trainer.fraud_retrain", "--report", str(report)], stack.env,
            workdir / "retrain.log")
        say(f"retrain-fraud: exit {code} in {retrain_s:.0f} s\n{output}")
        return {"transaction_days": days, "seed_s": round(seed_s, 1), "seed_cpu": cpu,
                "load_average": {"before": load_before, "after": load_after},
                "lake_after_seed_s": round(lake_s, 1), "lake": span,
                "seed_output_tail": output_tail(workdir / "seed.log"),
                "retrain_s": round(retrain_s, 1), "retrain_exit": code,
                "retrain_output": output.strip().splitlines(),
                "retrain": json.loads(report.read_text()) if code == 0 else None}
    finally:
        stack.stop()


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the seeder, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def output_tail(log: Path) -> list[str]:
    """The seeder's summary lines (its progress bars left out)."""
    lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
    return [line for line in lines if line and "%|" not in line][-8:]


def fraud_model_seconds(days: int) -> dict[str, float]:
    """`make models`' fraud part on the default scale's world of `days` days: generation and
    training (features, models, evaluation), the part of `make models` the world's length moves."""
    started = time.monotonic()
    config = TransactionWorldConfig.ending_on_handbook_calendar(
        days, n_customers=SCALES["default"].transactions.n_customers,
        n_terminals=SCALES["default"].transactions.n_terminals)
    world = generate_transactions(config)
    generated = time.monotonic() - started
    with tempfile.TemporaryDirectory() as report:
        train_fraud(world, Path(report), progress=lambda _: None)
    return {"days": days, "transactions": len(world.transactions),
            "generate_s": round(generated, 1),
            "generate_and_train_s": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--compare-days", type=float, default=38.0,
                        help="first seed this many days on a stack of its own (0: skip)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two seeds this many times (the machine is shared)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stacks stop in their `finally`
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="fraud-retrain-dev-"))
    load_before = list(os.getloadavg())

    say("make models' fraud part on the 58-day and the 66-day world, in this process")
    models_cost = [fraud_model_seconds(58), fraud_model_seconds(LAKE_DAYS_FOR_A_RETRAIN)]
    say(f"{models_cost}")

    say("make models (python -m services.trainer): the dev world and v1")
    env = {**os.environ, "MLSD_MODEL_REPOSITORY": str(root / "models"),
           "MLSD_WORLD_DIR": str(root / "worlds"), "MLSD_REPORT_DIR": str(root / "reports"),
           "MLSD_DATASET": "synthetic", "MLSD_LOG_LEVEL": "WARNING"}
    models_s, code, output = timed_run(["services.trainer"], env, root / "models.log")
    if code != 0:
        raise RuntimeError(f"make models failed: {output[-2_000:]}")
    repository = ModelRepository(root / "models")
    production = repository.production_version("fraud")
    say(f"make models in {models_s:.0f} s; fraud v{production} production")

    runs = []
    for round_ in range(args.rounds):
        if args.compare_days:
            runs.append(seed_and_retrain(root / f"stack-{round_}-compare", root,
                                         args.compare_days))
        runs.append(seed_and_retrain(root / f"stack-{round_}", root,
                                     float(LAKE_DAYS_FOR_A_RETRAIN)))

    world = json.loads((root / "worlds/transactions/config.json").read_text())
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": describe(),
        "load_average_before": load_before,
        "versions": {"scikit_learn": sklearn.__version__, "onnxruntime": onnxruntime.__version__,
                     "duckdb": duckdb.__version__},
        "world": {"customers": world["n_customers"], "terminals": world["n_terminals"],
                  "days": world["n_days"], "start_date": world["start_date"],
                  "seed": world["seed"]},
        "lake_days_for_a_retrain": LAKE_DAYS_FOR_A_RETRAIN,
        "make_models_s": round(models_s, 1), "production_version": production,
        "fraud_models_cost": models_cost, "runs": runs,
        "run_seconds": round(time.monotonic() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    say(f"result: {args.out}; scratch {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
