"""The fraud lifecycle through running services: drift fires in Prometheus, a gated retrain from
the lake shadows production on labelled traffic, its promotion clears the alert.

    make shadow-run       # .venv/bin/python benchmarks/fraud_lifecycle_stack.py [--customers 1000]

Its own redis-server, Kafka broker and Prometheus on free ports (never the default-port stack),
and the real processes: the stream processor (transaction features, fraud labels), the lake sink,
the stream scorer (`python -m services.fraud.stream`). The traffic is the transaction
simulator's drift scenario (`prices_shifted`: every amount x1.5), its events moved by whole weeks
to end now, each fraud label published when it arrives (the seeder's events):

    production v1: make models' fraud model on the world as it was (prices x1)
    phase A  events up to now - 21 d ─▶ scorer (v1) ─▶ fraud_stream_drift_psi ─▶ Prometheus
             (the shipped drift rules, `for` shortened) ─▶ ModelInputDrift fires
    retrain  retrain_from_lake as of the end of A (make retrain-fraud's code) ─▶ v2, unpromoted
    phase B  scorer restarted with MLSD_FRAUD_SHADOW_VERSION=v2; events up to now - 3 d
             ─▶ fraud-decisions + fraud-decisions-shadow ─▶ lake ─▶ the shadow report as of now
             (services/trainer/fraud_shadow_report.py): labels final for B's first 14 days
             ─▶ the alert fires again (v1 still serves the shifted prices)
    promote  v2 (it passed its gate), the alert firing ─▶ the scorer reloads it ─▶ phase C: the
             last 3 days, paced to last the watch ─▶ PSI against v2's reference ─▶ the alert
             resolves, and is watched staying inactive (--hold, 2 min) while traffic flows

The scorer's age limit (MLSD_FRAUD_STREAM_MAX_AGE_S) is raised to cover the replayed weeks:
labels take days, so the transactions both models decide must be weeks old for any label to be
final now. Prometheus scrapes every 2 s and evaluates drift.yml with `for: 30m` replaced by
`--alert-for` (default 1m): the same expressions, a run of minutes instead of hours. The alert's
state is read from Prometheus' alerts API (/api/v1/alerts: pending or firing; absent = inactive).

Writes docs/evaluation/fraud-shadow-stack.{json,md} (the shadow report) and
benchmarks/results/fraud_drift_stack.json (the alert's timeline, PSI, the gate).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import onnxruntime
import sklearn

from services.common.bus.clients import kafka_publisher
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import (
    FRAUD_DECISIONS,
    FRAUD_DECISIONS_SHADOW,
    FRAUD_LABELS,
    TRANSACTIONS,
    platform_topics,
)
from services.common.lake.sql import open_lake
from services.common.loopback import free_port
from services.common.machine import describe
from services.common.models import ModelRepository
from services.common.probe import process_ready
from services.common.processes import stop_process
from services.common.settings import PlatformSettings
from services.devstack.servers import REPO_ROOT, ServerProcess, start_kafka, start_redis
from services.seeder.history import transaction_messages
from services.trainer import fraud_shadow_report as shadow_report
from services.trainer.fraud import train_fraud
from services.trainer.fraud_retrain import retrain_from_lake
from services.trainer.fraud_retrain import summary as retrain_summary
from services.trainer.pipeline import register
from services.trainer.worlds.transactions import (
    TransactionWorldConfig,
    generate_transactions,
    prices_shifted,
)

RULES = REPO_ROOT / "infra/prometheus/rules/drift.yml"
THRESHOLD = 0.25  # drift.yml's: PSI over it is a major shift
CLEAR_WITHIN_S = 60.0  # phase C's traffic before the watch: v2's window fills (500 rows), reads
PRICE_FACTOR = 1.5
GROUPS = {"fraud-scorer": [TRANSACTIONS],
          "lake-sink": [TRANSACTIONS, FRAUD_LABELS, FRAUD_DECISIONS, FRAUD_DECISIONS_SHADOW],
          "stream-transaction-features": [TRANSACTIONS],
          "stream-fraud-labels": [FRAUD_LABELS]}


def say(message: str) -> None:
    print(f"[lifecycle {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        stop_process(self.process, 40)


def launch(module: str, port_variable: str, env: dict[str, str], logs: Path) -> Service:
    port = free_port()
    log = logs / f"{module}-{port}.log"
    process = subprocess.Popen([sys.executable, "-m", f"services.{module}"], cwd=REPO_ROOT,
                               env={**os.environ, **env, port_variable: str(port)},
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    service = Service(module, process, f"http://127.0.0.1:{port}")
    if not process_ready(f"{service.url}/readyz", process, 120):
        service.stop()
        raise RuntimeError(f"{module} did not get ready: {log}")
    return service


def start_prometheus(workdir: Path, scorer_port_file: Path, alert_for: str) -> Service:
    """Prometheus on a free port: the shipped drift rules (only `for` shortened), the scorer's
    /metrics found through a file (the scorer moves to a new port when it restarts)."""
    rules = workdir / "drift.yml"
    rules.write_text(re.sub(r"for: 30m", f"for: {alert_for}", RULES.read_text()))
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "fraud-stream",
                            "file_sd_configs": [{"files": [str(scorer_port_file)],
                                                 "refresh_interval": "2s"}]}]}))
    log = workdir / "prometheus.log"
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log.open("wb"),
        stderr=subprocess.STDOUT)
    service = Service("prometheus", process, f"http://127.0.0.1:{port}")
    if not process_ready(f"{service.url}/-/ready", process, 60):
        service.stop()
        raise RuntimeError(f"prometheus did not get ready: {log}")
    return service


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class AlertWatch:
    """Polls Prometheus every 2 s: ModelInputDrift's state and the largest alerted PSI."""

    def __init__(self, prometheus: str) -> None:
        self._url = prometheus
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = urllib.parse.quote(
            'max(fraud_stream_drift_psi{column!~"score|tx_during_weekend"})')
        while not self._stop.wait(2.0):
            try:
                alerts = get_json(f"{self._url}/api/v1/alerts")["data"]["alerts"]
                psi = get_json(f"{self._url}/api/v1/query?query={query}")["data"]["result"]
            except OSError:
                continue
            states = sorted({a["state"] for a in alerts
                             if a["labels"].get("alertname") == "ModelInputDrift"})
            columns = sorted({a["labels"]["column"] for a in alerts
                              if a["labels"].get("alertname") == "ModelInputDrift"})
            value = float(psi[0]["value"][1]) if psi else math.nan
            # NaN (a new version's window under 500 rows, or no scorer): no value, no alert.
            self.samples.append({"at": utc_now(), "state": states[-1] if states else "inactive",
                                 "columns": columns,
                                 "max_input_psi": value if math.isfinite(value) else None})

    def state(self) -> str:
        return self.samples[-1]["state"] if self.samples else "inactive"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


def event_time(message: OutboundMessage) -> datetime:
    return datetime.fromisoformat(json.loads(message.value)["time"])


def publish(kafka: str, messages: list[OutboundMessage], chunk: int = 5_000,
            pause_s: float = 0.0) -> None:
    publisher = kafka_publisher(PlatformSettings(kafka_bootstrap_servers=kafka),
                                client_id="lifecycle", delivery_timeout_s=30.0, linger_ms=20)
    try:
        for start in range(0, len(messages), chunk):
            publish_or_raise(publisher, messages[start:start + chunk])
            time.sleep(pause_s)
    finally:
        publisher.close()


def drained(kafka: str) -> bool:
    return all(lag == 0 for lag in group_lags(kafka, GROUPS).values())


def lake_holds(lake: Path, decisions: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with open_lake(lake) as con:
                row = con.execute("SELECT count(*) FROM decisions").fetchone()
        except Exception:  # no Parquet file yet: not there
            return False
        return row is not None and int(row[0]) >= decisions
    return check


def phases(messages: list[OutboundMessage], cuts: list[datetime]
           ) -> Iterator[list[OutboundMessage]]:
    """The events between consecutive cuts (time order kept)."""
    lower = datetime.min.replace(tzinfo=UTC)
    for cut in cuts:
        yield [m for m in messages if lower < event_time(m) <= cut]
        lower = cut


def resolved(sample: dict[str, Any]) -> bool:
    """Inactive with every alerted input's gauge read and under the threshold: a NaN gauge (a
    new version's window under 500 rows) alerts on nothing, and an inactive state over the
    threshold is a rule not evaluated yet; neither is a resolution."""
    psi = sample["max_input_psi"]
    return sample["state"] == "inactive" and psi is not None and psi <= THRESHOLD


def timeline(samples: list[dict[str, Any]], marks: dict[str, str],
             hold_s: float = 0.0) -> dict[str, Any]:
    """State changes of ModelInputDrift, the moments the loop is about, and the watch after the
    resolution: every sample from it to `hold_s` later inactive, with its gauges read?"""
    changes = [s for i, s in enumerate(samples) if i == 0 or s["state"] != samples[i - 1]["state"]]
    firing = [s["at"] for s in changes if s["state"] == "firing"]
    at_promotion = [s for s in samples if s["at"] <= marks["promoted"]]
    cleared = next((s["at"] for s in samples if s["at"] > marks["promoted"] and resolved(s)),
                   None)
    held = [] if cleared is None else [s for s in samples if s["at"] >= cleared]
    # between the promotion and the resolution: what the new version's first windows read
    settling = [s for s in changes if marks["promoted"] < s["at"] < (cleared or "~")]
    watched = 0.0 if not held else (datetime.fromisoformat(held[-1]["at"])
                                    - datetime.fromisoformat(cleared or "")).total_seconds()
    return {"drift_started": marks["phase_a_published"], "first_fired": firing[0] if firing
            else None, "at_promotion": at_promotion[-1]["state"] if at_promotion else None,
            "promoted": marks["promoted"], "settling": settling, "cleared": cleared,
            "hold": {"asked_s": hold_s, "watched_s": round(watched), "samples": len(held),
                     "states": sorted({s["state"] for s in held}),
                     "stayed_inactive": bool(held) and watched >= hold_s
                     and all(resolved(s) for s in held)},
            "state_changes": changes}


def shadow_markdown(result: dict[str, Any]) -> str:
    r = result["report"]
    lines = [
        "# Fraud: production against its shadow challenger, on the running stream scorer",
        "",
        f"Generated by `make shadow-run` ([fraud_lifecycle_stack.py](../../benchmarks/"
        f"fraud_lifecycle_stack.py)) on {result['date']}; [json](fraud-shadow-stack.json).",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cpus']} cores, load average "
        f"{', '.join(f'{v:.1f}' for v in result['machine']['load_average'])} at the end; "
        f"scikit-learn {result['versions']['scikit_learn']}, onnxruntime "
        f"{result['versions']['onnxruntime']}.",
        "",
        f"Production v{result['production_version']} (trained on the world before prices rose "
        f"x{PRICE_FACTOR}) and challenger v{result['challenger_version']} (retrained from the "
        "lake by `make retrain-fraud`'s code as of the end of phase A, registered unpromoted, "
        "gate: " + result["gate"] + ") decided the same "
        f"{r['pairs']:,} transactions on the stream scorer; labels as of {r['as_of']}: "
        f"{r['labelled']:,} final ({r['frauds']} fraud). Actions agree on "
        f"{r['agreement']:.1%}.",
        "",
        "| model | AUC | AP | decline precision | decline recall | review or decline "
        "precision | review or decline recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("production", "shadow"):
        side = r[name]
        if side is None:
            lines.append(f"| {name} | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| {name} v{','.join(map(str, side['versions']))} | {side['auc_roc']:.3f} | "
            f"{side['average_precision']:.3f} | {side['decline_precision']:.3f} | "
            f"{side['decline_recall']:.3f} | {side['flagged_precision']:.3f} | "
            f"{side['flagged_recall']:.3f} |")
    lines += ["", "Actions, production (rows) against shadow (columns):", "",
              "| | " + " | ".join(shadow_report.ACTIONS) + " |", "|---|---|---|---|"]
    lines += [f"| {p} | " + " | ".join(f"{r['actions'][p][s]:,}" for s in shadow_report.ACTIONS)
              + " |" for p in shadow_report.ACTIONS]
    return "\n".join(lines) + "\n"


def main() -> int:  # noqa: PLR0915  (one scenario, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=86)
    parser.add_argument("--alert-for", default="1m")
    parser.add_argument("--hold", type=float, default=120.0,
                        help="seconds the resolved alert is watched staying inactive, phase C's "
                             "traffic still flowing")
    parser.add_argument("--shadow-out", type=Path, default=REPO_ROOT / "docs/evaluation")
    parser.add_argument("--drift-out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/fraud_drift_stack.json")
    args = parser.parse_args()
    # SIGTERM stops the run through its `finally`: every process it started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fraud-lifecycle-"))
    (workdir / "logs").mkdir()
    repository = ModelRepository(workdir / "models")
    marks: dict[str, str] = {}
    counts: dict[str, int] = {}

    say("world and production v1 (make models' fraud trainer)")
    # 86 days: the retrain's training week (28 to 21 days before phase A's end, which is 21
    # days before the last) starts on day 36, so all but its first day are past the trainer's
    # burn-in (37 days: terminal and merchant windows of 30 days ending 7 days ago) and train
    # on full windows, as the live rows are (72 days put that week on days 22-29: no row left).
    config = TransactionWorldConfig(n_customers=args.customers, n_terminals=2 * args.customers,
                                    n_days=args.days, seed=args.seed)
    world = generate_transactions(config)
    production = register(repository, train_fraud(world, workdir / "report",
                                                  progress=lambda _: None).model).version
    shifted = prices_shifted(world.transactions, PRICE_FACTOR)
    end = shifted["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    now = datetime.now(UTC)
    shift = timedelta(weeks=(now - end) // timedelta(weeks=1))
    messages = list(transaction_messages(shifted, shift, now))
    # Cut from the history's end (within the week before now): phase C keeps 3 days of traffic.
    last = end + shift
    cut_a, cut_b = last - timedelta(days=21), last - timedelta(days=3)
    phase_a, phase_b, phase_c = list(phases(messages, [cut_a, cut_b, now]))
    counts |= {"transactions": len(shifted), "events": len(messages),
               "phase_a_events": len(phase_a), "phase_b_events": len(phase_b),
               "phase_c_events": len(phase_c)}

    redis_server: ServerProcess = start_redis(workdir)
    kafka: ServerProcess = start_kafka(workdir)
    services: list[Service] = []
    scorer: Service | None = None
    watch: AlertWatch | None = None
    targets = workdir / "targets.json"
    env = {"MLSD_REDIS_URL": redis_server.address,
           "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
           "MLSD_MODEL_REPOSITORY": str(repository.root), "MLSD_LAKE_ROOT": str(workdir / "lake"),
           "MLSD_LAKE_FLUSH_INTERVAL_S": "2", "MLSD_LOG_LEVEL": "WARNING",
           "MLSD_STREAM_CONCERNS": "transaction-features,fraud-labels",
           # the oldest replayed transaction is at most the world's days and a week old
           "MLSD_FRAUD_STREAM_MAX_AGE_S": str((config.n_days + 7) * 86_400),
           "MLSD_FRAUD_STREAM_PROCESSES": "1"}

    def start_scorer(extra: dict[str, str]) -> Service:
        service = launch("fraud.stream", "MLSD_FRAUD_STREAM_METRICS_PORT", env | extra,
                         workdir / "logs")
        targets.write_text(json.dumps([{"targets": [service.url.removeprefix("http://")]}]))
        return service

    try:
        ensure_topics(kafka.address, platform_topics(3))
        services += [launch("stream", "MLSD_STREAM_PORT", env, workdir / "logs"),
                     launch("lake", "MLSD_LAKE_PORT", env, workdir / "logs")]
        scorer = start_scorer({})
        prometheus = start_prometheus(workdir, targets, args.alert_for)
        services.append(prometheus)
        watch = AlertWatch(prometheus.url)

        say(f"phase A: {len(phase_a):,} events up to {cut_a:%Y-%m-%d %H:%M}, scored by v1")
        marks["phase_a_published"] = utc_now()
        publish(kafka.address, phase_a)
        wait_for(lambda: drained(kafka.address), 900, "phase A drained")
        marks["phase_a_drained"] = utc_now()
        wait_for(lambda: watch.state() == "firing", 600, "ModelInputDrift firing")
        marks["alert_firing_phase_a"] = utc_now()
        say(f"ModelInputDrift firing: {watch.samples[-1]}")

        say("retrain from the lake as of the end of phase A (make retrain-fraud's code)")
        wait_for(lake_holds(workdir / "lake", 1), 120, "decisions in the lake")
        result = retrain_from_lake(workdir / "lake", repository, cut_a, report=None)
        say(retrain_summary(result))
        if result.registered is None:
            raise RuntimeError("the challenger did not pass its gate: nothing to shadow")
        challenger = result.registered

        say(f"phase B: scorer restarted with shadow v{challenger}; {len(phase_b):,} events")
        scorer.stop()
        scorer = start_scorer({"MLSD_FRAUD_SHADOW_VERSION": str(challenger)})
        marks["phase_b_published"] = utc_now()
        publish(kafka.address, phase_b)
        wait_for(lambda: drained(kafka.address), 900, "phase B drained")
        time.sleep(6)  # the lake sink's flush interval (2 s), with room
        marks["phase_b_drained"] = utc_now()
        # The restart dropped v1's gauges (a new process: its window refills), so the alert
        # went pending again; the promotion is to resolve a firing alert, so it waits for one.
        wait_for(lambda: watch.state() == "firing", 300, "ModelInputDrift firing on phase B")
        marks["alert_firing_phase_b"] = utc_now()
        as_of = datetime.now(UTC)
        with open_lake(workdir / "lake") as con:
            report = shadow_report.report(shadow_report.pairs(con, as_of), as_of)
        say(shadow_report.summary(report))

        repository.promote("fraud", challenger, actor="lifecycle-run")
        marks["promoted"] = utc_now()
        # Paced, as live traffic comes, over the time to resolve and the watch after: the
        # gauges are recomputed on scoring, at most every 5 s, so a backlog drained in one
        # burst would leave the new window's gauges unset, and a watch without traffic would
        # only see the last values held.
        seconds = CLEAR_WITHIN_S + args.hold
        per_second = max(1, math.ceil(len(phase_c) / seconds))
        counts["phase_c_events_per_s"] = per_second
        say(f"promoted v{challenger} (the alert {watch.state()}); phase C: {len(phase_c):,} "
            f"events, {per_second}/s for about {seconds:.0f} s")
        time.sleep(3)  # the scorer's model reload interval (1 s), with room
        publisher = threading.Thread(target=publish, args=(kafka.address, phase_c, per_second,
                                                           1.0))
        publisher.start()
        try:
            wait_for(lambda: watch.samples[-1]["at"] > marks["promoted"]
                     and resolved(watch.samples[-1]), CLEAR_WITHIN_S + 60,
                     "ModelInputDrift resolved with gauges read")
            marks["resolved"] = utc_now()
            say(f"resolved; watching it {args.hold:.0f} s, the traffic flowing")
            time.sleep(args.hold)
        except TimeoutError as exc:  # an outcome to record (timeline: cleared None), not a crash
            say(str(exc))
        publisher.join()
        wait_for(lambda: drained(kafka.address), 600, "phase C drained")
        marks["phase_c_drained"] = utc_now()
    finally:
        if watch is not None:
            watch.stop()
        for service in [*services, *([scorer] if scorer else [])]:
            service.stop()
        kafka.stop()
        redis_server.stop()

    common = {"date": utc_now(), "machine": describe(),
              "versions": {"scikit_learn": sklearn.__version__,
                           "onnxruntime": onnxruntime.__version__,
                           "prometheus": subprocess.run(["prometheus", "--version"],
                                                        capture_output=True, text=True,
                                                        check=False).stdout.splitlines()[0]},
              "scenario": {"customers": args.customers, "seed": args.seed, "days": config.n_days,
                           "price_factor": PRICE_FACTOR, "cuts": {"a": cut_a.isoformat(),
                                                                  "b": cut_b.isoformat()}},
              "counts": counts, "production_version": production,
              "challenger_version": challenger, "gate": result.verdict.reason,
              "run_seconds": round(time.monotonic() - started)}
    shadow = common | {"report": json.loads(report.to_json())}
    args.shadow_out.mkdir(parents=True, exist_ok=True)
    (args.shadow_out / "fraud-shadow-stack.json").write_text(
        json.dumps(shadow, indent=1, default=float) + "\n")
    (args.shadow_out / "fraud-shadow-stack.md").write_text(shadow_markdown(shadow))
    drift = common | {
        "alert": {"rules": str(RULES.relative_to(REPO_ROOT)), "for": args.alert_for,
                  "scrape_and_evaluation_interval_s": 2},
        "marks": marks, "timeline": timeline(watch.samples, marks, args.hold),
        "retrain": json.loads(result.to_json()), "samples": watch.samples}
    args.drift_out.parent.mkdir(parents=True, exist_ok=True)
    args.drift_out.write_text(json.dumps(drift, indent=1, default=float) + "\n")
    moments = {k: v for k, v in timeline(watch.samples, marks, args.hold).items()
               if k != "state_changes"}
    say(f"timeline: {json.dumps(moments)}")
    say(f"results: {args.shadow_out}/fraud-shadow-stack.*, {args.drift_out}; scratch {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
