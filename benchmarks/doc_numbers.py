"""The one source of the docs' figures: reads the committed results and writes them between markers.

    .venv/bin/python benchmarks/doc_numbers.py           # rewrite every marked block in the pages
    .venv/bin/python benchmarks/doc_numbers.py --check   # exit 1 and name the blocks that differ

A page holds a block as

    <!-- numbers:NAME begin (benchmarks/doc_numbers.py) -->
    ...generated...
    <!-- numbers:NAME end -->

and NAME is a key of BLOCKS. Every figure in a block is read from a committed result
(benchmarks/results/*.json, docs/evaluation/**) or is arithmetic on one, with the arithmetic
shown; the only constants are the design brief's (its rates, users, budgets, uptime), the aims
issues 14 and 15 set, and the assumptions an interview answer states aloud (peak factor,
utilisation, retention). The pages are the README, load-tests/README.md and everything under
docs/. A result refreshed without its pages fails tests/unit/docs/test_interview_numbers.py until
this runs again; that test also checks what else can contradict itself mechanically (the Go
version, the result files and sections pages link to, the settings defaults they quote).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# every Markdown file under these is scanned for blocks
PAGES = ("README.md", "load-tests/README.md", "docs")

# The design brief's numbers: requirements, not measurements.
RECS_PER_DAY = 1_000_000_000
USERS = 200_000_000
TX_PER_S = 10_000
RECS_BUDGET_MS = 100
FRAUD_BUDGET_MS = 50
AVAILABILITY = 0.999
# What an interview answer assumes aloud; each is printed beside the figure it changes.
PEAK_FACTOR = 3             # peak hour over the daily average (recs_cpu.py's 35,000 req/s)
TARGET_UTILISATION = 0.5    # a process or Redis shard run at half a core: room for a zone's loss
KAFKA_RETENTION_DAYS = 7    # Kafka's default log retention
REPLICATION = 3             # Kafka replicas, one per zone; Redis: a master and 2 replicas
STATE_RETENTION_DAYS = 31   # the card and customer logs trim records older than 31 days
# Issues 14 and 15's targets, the aims the design pages are judged against.
FRAUD_HTTP_AIMS = ((1000, FRAUD_BUDGET_MS), (500, 10))  # req/s for 60 s, p99 at most (ms)
RECS_UNCACHED_AIM = 600     # req/s, every answer computed
RECS_REALISTIC_AIM = 1000   # req/s, the population mix, cache share stated
# A run kept up when it served this share of the rate offered (Poisson arrivals wander a little).
KEPT_UP = 0.95
# The code's own setting (services/common/bus/topics.py MIN_PARTITIONS; a test holds them equal).
TRANSACTIONS_PARTITIONS = 12
# The recommendation load mix changed at commit a70ed33 (2026-12-06 05:54 UTC): a run before it
# drew 60 % of requests from 60 users, after it the whole population (load-tests/viewers.py).
POPULATION_MIX_SINCE = "2026-12-06 05:54"

Json = dict[str, Any]


def number(value: float, digits: int = 0) -> str:
    """1,234 or 1,234.5: the docs' thousands separator."""
    return f"{value:,.{digits}f}"


def size(n_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes:,.0f} B"


def link(path: str, page: str) -> str:
    """A repository path as a link from `page` (docs/... pages sit one or two folders down)."""
    depth = page.count("/")
    return f"[`{path}`]({'../' * depth}{path})"


@dataclass(frozen=True)
class LoadRun:
    """One `make load` run committed under docs/evaluation/make-load-<stamp>/."""

    folder: str
    stamp: str                      # 2026-12-06 05:18
    slo: dict[str, dict[str, Json]]  # design -> {"closed": row, "open": row}
    cache_share: dict[str, str]     # "closed"/"open" -> "79 %"
    mix: str
    cpu: str                        # the machine's CPU model, as its run.json records it

    @property
    def passed(self) -> bool:
        return {row["verdict"] for loops in self.slo.values() for row in loops.values()} \
            == {"PASS"}

    @property
    def machine(self) -> str:
        """`the Intel Xeon machine`: which of the project's machines ran it."""
        return machine_words(self.cpu)


@dataclass(frozen=True)
class Results:
    """The committed results under `root`, read when asked for (a missing file is None)."""

    root: Path = ROOT

    def result(self, name: str) -> Json | None:
        path = self.root / "benchmarks" / "results" / f"{name}.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else None

    def need(self, name: str) -> Json:
        found = self.result(name)
        if found is None:
            raise FileNotFoundError(f"benchmarks/results/{name}.json is missing")
        return found

    def sweep(self, design: str) -> tuple[str, Json]:
        """The newest committed load sweep that ran `design`: its folder and result."""
        folders = sorted((self.root / "docs" / "evaluation" / "load-sweep").glob("*/sweep.json"))
        for path in reversed(folders):
            found = json.loads(path.read_text("utf-8"))
            if design in found["designs"]:
                return str(path.parent.relative_to(self.root)), found
        raise FileNotFoundError(f"no committed load sweep ran {design}")

    def load_run(self) -> LoadRun:
        """The newest committed `make load` run (docs/evaluation/make-load-*)."""
        return self.load_runs()[-1]

    def load_runs(self) -> list[LoadRun]:
        """Every committed `make load` run, oldest first."""
        # a run counts once both designs' gate files are there (a partial copy is skipped)
        folders = sorted(
            folder for folder in (self.root / "docs" / "evaluation").glob("make-load-*")
            if all((folder / design / f"{name}_slo.csv").exists()
                   for design in ("fraud", "recs") for name in ("locust", "openloop")))
        if not folders:
            raise FileNotFoundError("no committed make-load run under docs/evaluation/")
        return [self._load_run(folder) for folder in folders]

    def _load_run(self, folder: Path) -> LoadRun:
        raw = folder.name.removeprefix("make-load-")          # 2026-12-06T0518Z
        stamp = f"{raw[:10]} {raw[11:13]}:{raw[13:15]}"                  # 2026-12-06 05:18
        slo: dict[str, dict[str, Json]] = {}
        for design in ("fraud", "recs"):
            slo[design] = {loop: self._slo_row(folder / design / f"{name}_slo.csv")
                           for loop, name in (("closed", "locust"), ("open", "openloop"))}
        cache = {loop: self._cache_share(folder / "recs", name)
                 for loop, name in (("closed", "locust"), ("open", "openloop"))}
        meta = json.loads((folder / "run.json").read_text("utf-8"))
        return LoadRun(str(folder.relative_to(self.root)), stamp, slo, cache,
                       str(meta["recs_mix"]), str(meta["machine"]["cpu"]))

    @staticmethod
    def _cache_share(folder: Path, prefix: str) -> str:
        """The share of answers served from the cache: the tally CSV when committed, else the
        run's summary.md (load-tests/report.py writes `served_from | cache 79%, ...` there)."""
        tally = folder / f"{prefix}_served_from.csv"
        if tally.exists():
            with tally.open(encoding="utf-8") as f:
                counts = {row["served_from"]: int(row["answers"]) for row in csv.DictReader(f)}
            total = sum(n for source, n in counts.items() if source != "malformed")
            return f"{round(100 * counts.get('cache', 0) / total)} %" if total else "not recorded"
        summary = folder / "summary.md"
        shares = re.findall(r"cache (\d+)%", summary.read_text("utf-8")) if summary.exists() else []
        index = 0 if prefix == "locust" else 1  # the summary's columns: closed loop, open loop
        return f"{shares[index]} %" if len(shares) > index else "not recorded"

    @staticmethod
    def _slo_row(path: Path) -> Json:
        with path.open(encoding="utf-8") as f:
            return dict(next(csv.DictReader(f)))


def mix_at(stamp: str) -> str:
    """The recommendation traffic mix a load run used, from when it ran (YYYY-MM-DD HH:MM...)."""
    return "skewed" if stamp.replace("T", " ")[:16] < POPULATION_MIX_SINCE else "population"


def machine_words(cpu: str) -> str:
    """The project's machines by CPU: most results ran on an Intel Xeon, those since session 13
    on an AMD EPYC about 2.7 times slower at the fraud stream's floor (docs/fraud.md)."""
    for vendor, family in (("Intel", "Xeon"), ("AMD", "EPYC")):
        if family in cpu:
            return f"the {vendor} {family} machine"
    return f"a {cpu} machine"


MIX_WORDS = {
    "skewed": "60 % of requests from 60 hot users, the mix before issue 15",
    "population": "the whole population, Zipf 0.8, a tenth unknown users",
}


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- the brief's arithmetic


def recs_rates() -> tuple[float, float]:
    average = RECS_PER_DAY / 86_400
    return average, average * PEAK_FACTOR


def error_budget_minutes() -> float:
    return (1 - AVAILABILITY) * 30 * 24 * 60


# ---------------------------------------------------------------- recommendations


def recs_scale(r: Results, page: str) -> str:
    memory = r.need("recs_memory")
    average, peak = recs_rates()
    per_user = memory["bytes_per_user"]
    keys = {key: number(value["mean"]) for key, value in memory["bytes_per_user_by_key"].items()}
    taste = memory["bytes_per_user_by_key"]["taste_row"]["mean"]
    shard_gb = memory["projection"]["shard_gb"]
    total = USERS * per_user["mean"]
    capped = memory["at_history_cap"]
    cache_entry = memory["response_cache"]["bytes"]["mean"]
    live_entries = peak * 300  # a cached list lives 5 minutes: at most one per request in 300 s
    titles, per_title = memory["catalog"]["titles"], memory["catalog"]["bytes_per_title"]
    when = memory["when"][:16].replace("T", " ")
    source = (f"{link('benchmarks/results/recs_memory.json', page)}, "
              f"{number(memory['users_sampled'])} users, Redis {memory['redis']['version']}, "
              f"{when} UTC")
    rows = [
        ["requests",
         f"1 B a day / 86,400 s = **{number(average)} req/s** on average; x{PEAK_FACTOR} at the "
         f"peak hour = **{number(peak)} req/s**",
         "brief; peak factor assumed"],
        ["online state per user",
         f"mean {number(per_user['mean'])} B (p50 {number(per_user['p50'])}, "
         f"p99 {number(per_user['p99'])}): history {keys['watch_history']}, "
         f"taste vector {keys['taste_row']}, profile {keys['profile']}, "
         f"count {keys['watch_count']}",
         source],
        ["200 M users",
         f"200 M x {number(per_user['mean'])} B = **{size(total)}**; x{REPLICATION} with two "
         f"replicas (one a zone) = {size(REPLICATION * total)}; "
         f"{math.ceil(total / (shard_gb * 1e9))} masters of {number(shard_gb)} GB",
         "arithmetic on the line above"],
        ["... at the history cap",
         f"{number(capped['events'])} events a user: {number(capped['bytes_per_user'])} B "
         f"-> {size(USERS * capped['bytes_per_user'])}, {capped['projection']['masters']} masters",
         "the same file"],
        ["taste vectors alone", f"200 M x {keys['taste_row']} B = {size(USERS * taste)}",
         "the same file"],
        ["response cache",
         f"{number(cache_entry)} B a cached list (mean); a list lives 300 s, so at most "
         f"{number(peak)} x 300 = {number(live_entries / 1e6, 1)} M lists = "
         f"{size(live_entries * cache_entry)} at the peak",
         "the same file; upper bound (every request a new user)"],
        ["catalog",
         f"{number(titles)} titles x {number(per_title)} B = {size(titles * per_title)} (one "
         "`{global}` slot: read by every request, so replicate it, never shard it)",
         "the same file"],
        ["impressions",
         f"one per answered list: {number(RECS_PER_DAY / 1e9)} B events a day on "
         f"`rec-impressions`, {number(average)}/s average; their size is not measured",
         "brief"],
        ["99.9 % uptime",
         f"(1 - 0.999) x 30 days = **{number(error_budget_minutes(), 1)} minutes** of errors or "
         "over-budget answers a month",
         "brief"],
    ]
    return table(["quantity", "estimate", "from"], rows)


def recs_cores(r: Results, page: str) -> str:
    cpu = r.result("recs_cpu")
    if cpu is None:
        sweep_path, sweep = r.sweep("recs")
        knee = sweep["designs"]["recs"]["service"]["knee_rps"]
        cores = sweep["machine"]["nproc"]
        average, peak = recs_rates()
        return (f"**Not measured yet**: `benchmarks/results/recs_cpu.json` (CPU per request by "
                "process, `benchmarks/recs_cpu.py`) is not committed. Until it is, the only "
                f"per-core figure is the load sweep's knee: {number(knee)} req/s on "
                f"{cores} shared cores with the whole stack and the load generator on them "
                f"({link(sweep_path + '/summary.md', page)}, "
                f"{sweep['generated'][:16].replace('T', ' ')} UTC), "
                f"so {number(knee / cores)} req/s a core: {number(average / (knee / cores))} cores "
                f"on average, {number(peak / (knee / cores))} at the peak, with that run's traffic "
                f"({MIX_WORDS[mix_at(sweep['generated'])]}; the sweep does not record its cache "
                "share).")
    load = cpu["load"]
    runs = cpu["runs"]
    processes = ("service", "redis", "kafka", "stream", "lake", "driver")
    run_rows = []
    for name, run in runs.items():
        per = run["cpu_ms_per_request"]
        served = run.get("served_from", {})
        answered = max(run["answered"], 1)
        share = ", ".join(f"{k} {round(100 * v / answered)} %" for k, v in sorted(served.items()))
        run_rows.append([name, number(run["answered"]), share or "-",
                         *[f"{per.get(p, 0):.3f}" for p in processes],
                         f"{run['p50_ms']} / {run['p99_ms']}"])
    plan_rows = [[line["rate"], number(line["req_s"]), f"{round(100 * line['hit_ratio'])} %",
                  f"{line['cpu_ms_per_request']:.3f}", number(line["req_s_per_core"]),
                  f"**{number(line['cores'], 1)}**",
                  number(math.ceil(line["cores"] / TARGET_UTILISATION))]
                 for line in cpu["capacity"]]
    machine = cpu["machine"]
    peak = max(line["req_s"] for line in cpu["capacity"])
    redis_ms = {name: run["cpu_ms_per_request"].get("redis", 0.0) for name, run in runs.items()}
    redis_line = f"Redis's share at {number(peak)} req/s, single-threaded per shard: " + "; ".join(
        f"{name}: {number(peak * ms / 1000, 2)} cores, "
        f"{math.ceil(peak * ms / 1000 / TARGET_UTILISATION)} shards at "
        f"{round(100 * TARGET_UTILISATION)} %" for name, ms in redis_ms.items() if ms > 0) + "."
    return "\n".join([
        f"CPU per request by process ({link('benchmarks/results/recs_cpu.json', page)}: "
        f"{cpu['when'][:16].replace('T', ' ')} UTC, {machine['cpus']} cores, "
        f"Python {machine['python']}, "
        f"{number(load['rps'])} req/s offered for {load['duration_s']} s a configuration, "
        f"{load['driver']}):", "",
        table(["configuration", "answered", "served from", *[f"{p} ms CPU" for p in processes],
               "p50 / p99 ms"], run_rows), "",
        "Cores for the brief's rates, (hit x cached + (1 - hit) x uncached) CPU a request, the "
        "service's, Redis's, Kafka's and the stream's counted (the driver's not):", "",
        table(["rate", "req/s", "cache hits", "ms CPU a request", "req/s a core", "cores",
               f"cores at {round(100 * TARGET_UTILISATION)} % utilisation"], plan_rows),
        "", redis_line,
    ])


# ---------------------------------------------------------------- fraud


def stream_run(r: Results, processes: int = 2) -> tuple[Json, Json]:
    stream = r.need("fraud_stream")
    run = next(t for t in stream["throughput"] if t["processes"] == processes)
    return stream, run


def fraud_stream_cores(r: Results) -> dict[str, float]:
    """Cores per process kind for TX_PER_S, from the 2-scorer drain's CPU per transaction."""
    _, run = stream_run(r)
    rate = run["lag_probe"]["tx_per_s"]
    parts = {k: run["cores"][k] / rate * TX_PER_S
             for k in ("scorer", "redis", "kafka", "other work")}
    # what the whole machine reached: all its cores over the drain's rate
    stream, _ = stream_run(r)
    parts["machine"] = stream["machine"]["nproc"] / rate * TX_PER_S
    return parts


def fraud_http_cores(r: Results) -> tuple[float, float, str, float, float]:
    """Cores for TX_PER_S on the HTTP path: from the full-stack sweep's knee and from one
    batching worker alone (its knee not reached: a lower bound of its rate)."""
    sweep_path, sweep = r.sweep("fraud")
    knee = sweep["designs"]["fraud"]["service"]["knee_rps"]
    cores = sweep["machine"]["nproc"]
    workers = r.need("fraud_workers_coalesced")
    alone = workers["targets"]["1 worker"]["knee_rps"]
    alone_cores = workers["machine"]["at_start"]["nproc"]
    return (TX_PER_S / knee * cores, TX_PER_S / alone * alone_cores, sweep_path, knee, alone)


def fraud_scale(r: Results, page: str) -> str:
    tx_bytes = r.need("kafka_clients")["setup"]["value_bytes"]
    decision_bytes = r.need("records_writer")["setup"]["event_bytes"]
    state = r.need("fraud_features_online")
    store = state["store"]
    per_tx = store["used_memory"] / store["transactions"]
    held = TX_PER_S * 86_400 * STATE_RETENTION_DAYS
    state_bytes = held * per_tx
    shard_gb = r.need("recs_memory")["projection"]["shard_gb"]  # the same shard size as recs
    cores = fraud_stream_cores(r)
    scorers = math.ceil(cores["scorer"] / TARGET_UTILISATION)
    in_rate, out_rate = TX_PER_S * tx_bytes, TX_PER_S * decision_bytes
    disk = (in_rate + out_rate) * 86_400 * KAFKA_RETENTION_DAYS * REPLICATION
    utilisation = f"{round(100 * TARGET_UTILISATION)} %"
    rows = [
        ["events",
         f"10,000 tx/s x 86,400 s = **{number(TX_PER_S * 86_400 / 1e6)} M transactions a day**, "
         "and as many decisions",
         "brief"],
        ["state per transaction",
         f"{number(store['used_memory'] / 1e6, 1)} MB of Redis for "
         f"{number(store['transactions'])} transactions ({store['days']} days, "
         f"{number(store['keys'])} keys): {number(per_tx)} B each",
         f"{link('benchmarks/results/fraud_features_online.json', page)}, "
         f"{state['meta']['date']}"],
        ["state at 10,000 tx/s",
         f"{STATE_RETENTION_DAYS} days held = {number(held / 1e9, 1)} B transactions x "
         f"{number(per_tx)} B = **{size(state_bytes)}**; "
         f"{math.ceil(state_bytes / (shard_gb * 1e9))} masters of {number(shard_gb)} GB "
         f"(x{REPLICATION} with 2 replicas)",
         f"arithmetic; an upper bound (the logs trim lazily, the fill ran {store['days']} days)"],
        ["Redis CPU",
         f"{number(cores['redis'], 2)} cores at 10,000 tx/s: one single-threaded shard would run "
         f"at {round(100 * cores['redis'])} %; "
         f"{math.ceil(cores['redis'] / TARGET_UTILISATION)} shards at {utilisation} "
         "(memory needs more, above)",
         "the drain below"],
        ["Kafka in",
         f"10,000 x {tx_bytes} B = {size(in_rate)}/s of transactions; decisions out "
         f"10,000 x {decision_bytes} B = {size(out_rate)}/s",
         f"{link('benchmarks/results/kafka_clients.json', page)} (message size), "
         f"{link('benchmarks/results/records_writer.json', page)} (decision event size)"],
        ["Kafka disk",
         f"({size(in_rate)} + {size(out_rate)})/s x {KAFKA_RETENTION_DAYS} days x "
         f"{REPLICATION} replicas = **{size(disk)}**",
         "retention and replicas assumed"],
        ["partitions",
         f"{scorers} scorer processes at {utilisation} of a core each "
         f"({number(cores['scorer'], 2)} scorer cores): partitions >= {scorers}; "
         f"{TRANSACTIONS_PARTITIONS} today (room for {TRANSACTIONS_PARTITIONS} scorers), "
         f"{2 * TRANSACTIONS_PARTITIONS} for twice the brief",
         "the drain below"],
        ["99.9 % uptime",
         f"**{number(error_budget_minutes(), 1)} minutes** a month of failed or over-budget "
         "decisions",
         "brief"],
    ]
    return table(["quantity", "estimate", "from"], rows)


def fraud_cores(r: Results, page: str) -> str:
    stream, run = stream_run(r)
    rate = run["lag_probe"]["tx_per_s"]
    nproc = stream["machine"]["nproc"]
    cores = fraud_stream_cores(r)
    plateau = r.need("fraud_stream_processes")
    drain_text = "; ".join(
        f"{name}: " + ", ".join(f"{t['processes']} -> {number(t['lag_probe']['tx_per_s'])}"
                                for t in found["throughput"])
        for name, found in (("fraud_stream.json", stream),
                            ("fraud_stream_processes.json", plateau)))
    http_full, http_alone, sweep_path, knee, alone = fraud_http_cores(r)
    attributed = cores["scorer"] + cores["redis"] + cores["kafka"] + cores["other work"]

    def micros(cores_at_brief: float) -> str:
        return f"{number(cores_at_brief / TX_PER_S * 1e6)} µs"

    labels = {"scorer": "scorer processes", "redis": "Redis", "kafka": "Kafka broker",
              "other work": "other work"}
    stream_rows = [[label, micros(cores[k]), number(cores[k], 2)] for k, label in labels.items()]
    stream_rows += [
        ["**attributed**", micros(attributed), f"**{number(attributed, 1)}**"],
        [f"all {nproc} cores over the drain's rate", micros(cores["machine"]),
         number(cores["machine"], 1)],
    ]
    when = stream["date"][:16].replace("T", " ")
    return "\n".join([
        f"**Stream** (`transactions` -> scorers): the drain of {number(run['backlog'])} "
        f"transactions with {run['processes']} scorers reached **{number(rate)} tx/s** on "
        f"{nproc} cores ({link('benchmarks/results/fraud_stream.json', page)}, {when} UTC); "
        f"by scorer count ({link('benchmarks/results/fraud_stream_processes.json', page)} too), "
        f"scorers -> tx/s: {drain_text}; a plateau: the cores, not the processes, are the limit. "
        "10,000 tx/s was **not measured**; the cores it needs, from that drain's CPU per "
        "transaction:",
        "",
        table(["process", "CPU a transaction", "cores at 10,000 tx/s"], stream_rows),
        "",
        f"**HTTP** (`POST /v1/score`): the full-stack sweep's knee is {number(knee)} req/s on 2 "
        f"cores ({link(sweep_path + '/summary.md', page)}), so 10,000 req/s needs "
        f"**{number(http_full)} cores**; one batching worker alone, on its own unseeded Redis, "
        f"held {number(alone)} req/s, its knee not reached "
        f"({link('benchmarks/results/fraud_workers_coalesced.json', page)}): "
        f"at most {number(http_alone, 1)} cores. 10,000 req/s was **not measured**.",
    ])


def fraud_http(r: Results, page: str) -> str:
    result = r.need("fraud_http_openloop")
    rows = [[str(run["fraud_workers"]), number(run["offered_rps"]), number(float(run["rps"]), 1),
             number(int(run["requests"])), run["failures"], f"{run['p50_ms']} / {run['p99_ms']}",
             run["verdict"], run.get("date", result["date"])]
            for run in result["runs"]]
    return "\n".join([
        f"Open loop, 60 s a run, the full demo stack on 2 cores "
        f"({link('benchmarks/results/fraud_http_openloop.json', page)}):", "",
        table(["fraud workers", "offered req/s", "served req/s", "requests", "failures",
               "p50 / p99 ms", f"p99 < {FRAUD_BUDGET_MS} ms", "when (UTC)"], rows)])


def load_table(r: Results, page: str) -> str:
    run = r.load_run()
    rows = []
    for design, budget in (("recs", RECS_BUDGET_MS), ("fraud", FRAUD_BUDGET_MS)):
        for loop in ("closed", "open"):
            row = run.slo[design][loop]
            cache = run.cache_share[loop] if design == "recs" else "-"
            rows.append([design, f"{loop} loop", number(float(row["rps"])),
                         number(int(row["requests"])),
                         row["failures"], f"{row['p50_ms']} / {row['p99_ms']}", cache,
                         f"{row['verdict']} (p99 < {budget} ms)"])
    return "\n".join([
        f"`make load` at its defaults, {run.stamp} UTC on {run.machine}, 30 s a loop, "
        "everything on 2 cores "
        f"({link(run.folder + '/recs/summary.md', page)}, "
        f"{link(run.folder + '/fraud/summary.md', page)}); "
        f"the recommendation traffic: **{MIX_WORDS.get(run.mix, run.mix)}**:", "",
        table(["design", "driver", "req/s", "requests", "failures", "p50 / p99 ms",
               "served from cache", "gate"], rows)]
        + ([] if (other := other_machine_run(r, run)) is None else
           ["", f"On {other.machine} ({other.stamp} UTC) the same defaults "
                f"{'passed' if other.passed else 'failed'}: {load_words(other)}."]))


def sweep_table(r: Results, page: str) -> str:
    rows = []
    for design in ("recs", "recs-uncached", "fraud"):
        try:
            path, sweep = r.sweep(design)
        except FileNotFoundError:
            if design == "recs-uncached":  # swept since issue 15; older runs have no such design
                continue
            raise
        found = sweep["designs"][design]
        service, floor = found["service"], found["floor"]
        at_least = "at least " if floor["knee_is_lower_bound"] else ""
        when = sweep["generated"][:16].replace("T", " ")
        label = found["endpoint"] + (" (uncached)" if design == "recs-uncached" else "")
        rows.append([label, f"**{number(service['knee_rps'])} req/s**",
                     f"{at_least}{number(floor['knee_rps'])} req/s", service["stopped"] or "-",
                     f"{link(path + '/summary.md', page)} ({when})"])
    return table(["endpoint", "knee (p99 in budget)", "floor's knee", "stopped", "run (UTC)"], rows)


def fraud_stages(r: Results, page: str) -> str:
    stream, run = stream_run(r, processes=1)
    stages = run["metrics"]["ms"]
    rows = [[name, f"{stages[name]['per_tx']:.3f} ms"] for name in stages]
    return "\n".join([
        table(["stage", "a transaction"], rows), "",
        f"{number(run['backlog'])} transactions, {run['processes']} scorer, "
        f"{link('benchmarks/results/fraud_stream.json', page)} "
        f"({stream['date'][:16].replace('T', ' ')} UTC, {stream['machine']['nproc']} cores).",
    ])


# ---------------------------------------------------------------- ten-minute tables, README


def recs_ten(r: Results, page: str) -> str:
    average, peak = recs_rates()
    memory = r.need("recs_memory")
    per_user = memory["bytes_per_user"]["mean"]
    run = r.load_run()
    open_recs = run.slo["recs"]["open"]
    _, sweep = r.sweep("recs")
    knee = sweep["designs"]["recs"]["service"]["knee_rps"]
    cpu = r.result("recs_cpu")
    if cpu is None:
        per_core = knee / sweep["machine"]["nproc"]
        cores = (f"not measured yet (recs_cpu.json); from the sweep's knee "
                 f"~{number(peak / per_core)} at the peak")
    else:
        top = max(x["req_s"] for x in cpu["capacity"])
        cores = "; ".join(f"{round(100 * c['hit_ratio'])} % hits: {number(c['cores'], 1)}"
                          for c in cpu["capacity"] if c["req_s"] == top)
    rows = [
        ["load", f"{number(average)} req/s average, {number(peak)} peak",
         "1 B a day, peak x3 assumed"],
        ["latency", f"p99 < {RECS_BUDGET_MS} ms",
         f"`make load`: p99 {open_recs['p99_ms']} ms open loop at "
         f"{number(float(open_recs['rps']))} req/s, {run.cache_share['open']} from cache "
         f"({run.mix} mix)"],
        ["one machine", "2 cores, everything on them", f"knee {number(knee)} req/s"],
        ["cores at the peak", "CPU a request x rate", cores],
        ["memory", "Redis, sharded by `{user}`",
         f"{size(USERS * per_user)} for 200 M users ({number(per_user)} B each), "
         f"{memory['projection']['masters']} masters of "
         f"{number(memory['projection']['shard_gb'])} GB"],
        ["uptime", "99.9 %",
         f"{number(error_budget_minutes(), 1)} min a month; Redis down -> popular list "
         "(fail open)"],
    ]
    return table(["", "the answer", "measured or computed here"], rows)


def open_max_amount(r: Results) -> float:
    """What a degraded decision may still approve: the policy file's stand-in limit."""
    policy = tomllib.loads((r.root / "config" / "fraud" / "policy.toml").read_text("utf-8"))
    return float(policy["degraded"]["open_max_amount"])


def fraud_ten(r: Results, page: str) -> str:
    _, run = stream_run(r)
    cores = fraud_stream_cores(r)
    http_full, http_alone, _, knee, _ = fraud_http_cores(r)
    openloop = r.need("fraud_http_openloop")
    best = max((x for x in openloop["runs"] if x["verdict"] == "PASS"),
               key=lambda x: x["offered_rps"])
    workers = f"{best['fraud_workers']} worker{'s' if best['fraud_workers'] != 1 else ''}"
    attributed = cores["scorer"] + cores["redis"] + cores["kafka"] + cores["other work"]
    rows = [
        ["load", f"{number(TX_PER_S)} tx/s = {number(TX_PER_S * 86_400 / 1e6)} M a day",
         "brief"],
        ["latency", f"decision p99 < {FRAUD_BUDGET_MS} ms",
         f"HTTP: p99 {best['p99_ms']} ms at {number(best['offered_rps'])} req/s for 60 s "
         f"({workers}, full stack)"],
        ["one machine", "2 cores",
         f"stream drain {number(run['lag_probe']['tx_per_s'])} tx/s ({run['processes']} "
         f"scorers); HTTP knee {number(knee)} req/s"],
        ["cores for 10,000/s", "CPU a transaction x rate",
         f"stream {number(attributed, 1)} attributed ({number(cores['machine'], 1)} at this "
         f"machine's efficiency); HTTP {number(http_alone, 1)}-{number(http_full, 1)}"],
        *by_cores_row(r),
        ["uptime", "99.9 %",
         f"{number(error_budget_minutes(), 1)} min a month; Redis down -> decide on the "
         "transaction alone, flagged `degraded` (fail open up to "
         f"{number(open_max_amount(r))}, else review)"],
    ]
    return table(["", "the answer", "measured or computed here"], rows)


def one_writer_words(r: Results) -> str:
    """What the stream's headline leaves out (the scorers drained alone) and what one writer
    of the fraud state bought on the full stack's shape, side by side."""
    run = r.result("fraud_stream_one_writer")
    if run is None:
        return ""
    by_variant = {t["variant"]["name"]: t["lag_probe"]["tx_per_s"] for t in run["throughput"]}
    return (" (the scorers alone: on the full stack the stream processor recorded every "
            "transaction a second time until the scorer became the one writer; side by side on "
            f"a slower machine, {number(by_variant['twowriters'])} -> "
            f"{number(by_variant['onewriter'])} tx/s, [docs/fraud.md](docs/fraud.md#measured))")


def readme_status(r: Results, page: str) -> str:
    run = r.load_run()
    fraud, recs = run.slo["fraud"], run.slo["recs"]
    gate = "passes" if run.passed else "does not pass (see its summaries)"
    fraud_knee = r.sweep("fraud")[1]["designs"]["fraud"]["service"]["knee_rps"]
    recs_knee = r.sweep("recs")[1]["designs"]["recs"]["service"]["knee_rps"]
    try:
        uncached = r.sweep("recs-uncached")[1]["designs"]["recs-uncached"]["service"]["knee_rps"]
        uncached_words = f" ({number(uncached)} with every list computed)"
    except FileNotFoundError:
        uncached_words = ""
    _, stream = stream_run(r)
    cores = fraud_stream_cores(r)
    http_full, http_alone, _, _, _ = fraud_http_cores(r)
    openloop = r.need("fraud_http_openloop")
    best = max((x for x in openloop["runs"] if x["verdict"] == "PASS"),
               key=lambda x: x["offered_rps"])
    attributed = cores["scorer"] + cores["redis"] + cores["kafka"] + cores["other work"]
    average, _ = recs_rates()
    sentences = [
        "What was measured, on one 2-core machine with every service, Redis, Kafka and the load "
        f"generator on the same two cores: `make load` ({run.stamp} UTC, on {run.machine}) "
        f"{gate} at its defaults, "
        f"fraud {number(float(fraud['closed']['rps']))} / {number(float(fraud['open']['rps']))} "
        f"req/s at p99 {fraud['closed']['p99_ms']} / {fraud['open']['p99_ms']} ms (closed / open "
        f"loop), recommendations {number(float(recs['closed']['rps']))} / "
        f"{number(float(recs['open']['rps']))} req/s at p99 {recs['closed']['p99_ms']} / "
        f"{recs['open']['p99_ms']} ms with {run.cache_share['closed']} / "
        f"{run.cache_share['open']} of answers from the cache "
        f"({MIX_WORDS.get(run.mix, run.mix)})" + other_machine_load(r, run) +
        f"; the load sweeps' knees ({machine_words(r.sweep('fraud')[1]['machine']['cpu_model'])}"
        ", as the figures after them) are "
        f"{number(fraud_knee)} req/s for fraud and {number(recs_knee)} for recommendations"
        f"{uncached_words}; "
        f"the fraud API held {number(best['offered_rps'])} req/s for a minute at p99 "
        f"{best['p99_ms']} ms; the fraud stream drained "
        f"{number(stream['lag_probe']['tx_per_s'])} transactions/s with two scorers"
        + one_writer_words(r) + ".",
        "The brief's 10,000 tx/s was **not** run: computed from the measured CPU per "
        f"transaction it needs ~{number(attributed, 1)} cores on the stream "
        f"({number(cores['machine'], 1)} at this machine's efficiency) and "
        + (f"{number(http_full)}" if number(http_alone) == number(http_full)
           else f"{number(http_alone)}-{number(http_full)}") + " on the HTTP path "
        "([docs/interview/fraud.md](docs/interview/fraud.md#2-back-of-the-envelope) shows the "
        "arithmetic)" + by_cores_words(r) + "; nor was the brief's 1 B recommendations a day "
        f"({number(average)} req/s on average; "
        "[docs/interview/recommendations.md](docs/interview/recommendations.md#2-back-of-the-envelope)).",
    ]
    return " ".join(sentences)


def by_cores_ratios(found: Json) -> list[float]:
    """The rounds' two-cores-over-one ratios of the scoring drain, lowest first."""
    return sorted(row["scoring_ratio"] for row in found["ratios"])


def by_cores_row(r: Results) -> list[list[str]]:
    """The interview table's row for the measured slope (none before it was measured)."""
    found = r.result("fraud_stream_cores")
    if found is None:
        return []
    ratios = by_cores_ratios(found)
    return [["scaling out", "add cores (scorers, Redis, brokers)",
             f"stream drain x{ratios[0]:.2f}-{ratios[-1]:.2f} from 1 core to 2 (taskset, "
             f"{len(ratios)} rounds in turns, {utc(found['date'])[:10]})"]]


def by_cores_words(r: Results) -> str:
    """`, and the stream's drain grew x2.08-2.27 from one core to two (...)`, or nothing before
    benchmarks/fraud_stream_cores.py ran."""
    found = r.result("fraud_stream_cores")
    if found is None:
        return ""
    ratios = by_cores_ratios(found)
    return (f"; the stream's drain grew x{ratios[0]:.2f}-{ratios[-1]:.2f} from one core to two "
            "(measured, in turns, [docs/fraud.md](docs/fraud.md#measured)), so the cores it "
            "needs grow in proportion")


def other_machine_run(r: Results, newest: LoadRun) -> LoadRun | None:
    """The newest `make load` run on another machine, when its verdict differs from the newest
    run's: what the same defaults did there."""
    other = [run for run in r.load_runs() if run.cpu != newest.cpu]
    return other[-1] if other and other[-1].passed != newest.passed else None


def other_machine_load(r: Results, newest: LoadRun) -> str:
    """`; on the Intel Xeon machine (...) it passed: ...`, or nothing (other_machine_run)."""
    run = other_machine_run(r, newest)
    if run is None:
        return ""
    return (f"; on {run.machine} ({run.stamp} UTC) it {'passed' if run.passed else 'failed'}: "
            + load_words(run))


def load_words(run: LoadRun) -> str:
    fraud, recs = run.slo["fraud"], run.slo["recs"]
    return (f"fraud {number(float(fraud['closed']['rps']))} / "
            f"{number(float(fraud['open']['rps']))} req/s at p99 {fraud['closed']['p99_ms']} / "
            f"{fraud['open']['p99_ms']} ms, recommendations "
            f"{number(float(recs['closed']['rps']))} / {number(float(recs['open']['rps']))} req/s "
            f"at p99 {recs['closed']['p99_ms']} / {recs['open']['p99_ms']} ms with "
            f"{run.cache_share['closed']} / {run.cache_share['open']} from the cache")


def recs_freshness(r: Results, page: str) -> str:
    """The newest committed `make load-freshness` run: watch -> changed list under load."""
    runs = sorted((r.root / "docs" / "evaluation").glob("freshness-*/freshness.json"))
    if not runs:
        return "**Not measured yet**: no `make load-freshness` run is committed."
    path = runs[-1]
    found = json.loads(path.read_text("utf-8"))
    summary, settings = found["summary"], found["settings"]
    load = path.parent / "openloop_slo.csv"
    beside = "the load beside it is not recorded"
    if load.exists():
        with load.open(encoding="utf-8") as f:
            row = next(csv.DictReader(f))
        failed = int(row["failures"]) / max(int(row["requests"]), 1)
        beside = (f"beside them the uncached open loop got {number(float(row['rps']))} req/s, "
                  f"p99 {row['p99_ms']} ms, {100 * failed:.1f} % failed")
    rel = str(path.relative_to(r.root))
    verdict = "PASS" if summary["passed"] else "FAIL"
    return (f"{number(summary['probes'])} probes, one every {settings['interval']:g} s "
            f"({link(rel, page)}, {found['when'][:16].replace('T', ' ')} UTC): "
            f"{number(summary['changed'])} lists changed, p50 {summary.get('p50_ms')} ms, "
            f"p99 {summary.get('p99_ms')} ms, max {summary.get('max_ms')} ms from ingest's 202 "
            f"to the first list built on the watch (budget p99 {summary['budget_s']:g} s: "
            f"**{verdict}**); {beside}.")


# ---------------------------------------------------------------- the design pages' own figures


def page_link(target: str, page: str) -> str:
    """A docs page (`docs/...`) as a relative link from `page`, anchor kept."""
    path, _, anchor = target.partition("#")
    rel = os.path.relpath(ROOT / path, (ROOT / page).parent)
    return f"[{path.removeprefix('docs/')}]({rel}{'#' + anchor if anchor else ''})"


def utc(stamp: str) -> str:
    """2026-12-06T03:33:45+00:00 or 2026-12-06 04:16 UTC -> 2026-12-06 03:33."""
    return stamp.replace("T", " ")[:16]


ENVELOPE = "docs/interview/fraud.md#2-back-of-the-envelope"


def fraud_stream_capacity(r: Results, page: str) -> str:
    """The one sentence every page quotes for the stream scorers 10,000 tx/s needs."""
    stream, run = stream_run(r)
    cores = fraud_stream_cores(r)
    scorers = math.ceil(cores["scorer"] / TARGET_UTILISATION)
    attributed = cores["scorer"] + cores["redis"] + cores["kafka"] + cores["other work"]
    per_tx_us = cores["scorer"] / TX_PER_S * 1e6
    return (
        f"Stream scorers for the brief's 10,000 tx/s, computed, not measured: the "
        f"{run['processes']}-scorer drain of {number(run['backlog'])} transactions reached "
        f"{number(run['lag_probe']['tx_per_s'])} tx/s on {stream['machine']['nproc']} cores "
        f"({link('benchmarks/results/fraud_stream.json', page)}, {utc(stream['date'])} UTC) "
        f"with {number(per_tx_us)} µs of scorer CPU a transaction, so 10,000 tx/s takes "
        f"{number(cores['scorer'], 2)} scorer cores: **{scorers} scorer processes** at "
        f"{round(100 * TARGET_UTILISATION)} % of a core each, and `transactions` needs at least "
        f"{scorers} partitions ({TRANSACTIONS_PARTITIONS} today); with Redis, Kafka and the rest, "
        f"{number(attributed, 1)} cores ({number(cores['machine'], 1)} at this machine's "
        f"efficiency). The arithmetic: {page_link(ENVELOPE, page)}.")


def workers_table(r: Results, page: str, name: str) -> str:
    """A fraud_workers*.json run (benchmarks/fraud_workers.py): p99 per target and rate, knee."""
    found = r.need(name)
    rates = found["settings"]["rates"]
    rows = []
    for target, result in found["targets"].items():
        steps = {step["offered_rps"]: step for step in result["steps"]}
        cells = []
        for rate in rates:
            step = steps.get(rate)
            if step is None:
                cells.append("stopped")
            elif step["within_budget"]:
                cells.append(f"{number(step['p99_ms'], 1)} ms")
            else:
                p99 = step["p99_ms"]
                cells.append(f"{number(p99, 1 if p99 < 1000 else 0)} ms "
                             f"({number(step['achieved_rps'])} "
                             "req/s served)")
        # the rates ran out inside the budget: the knee is only a lower bound
        lower = "at least " if steps.get(rates[-1], {}).get("within_budget") else ""
        label = "bare-endpoint floor (floor.py, 1 process)" if target == "floor" else \
            f"fraud, {target}"
        rows.append([label, *cells, f"{lower}{number(result['knee_rps'])} req/s"])
    machine = found["machine"]["at_start"]
    requests = [s["requests"] for t in found["targets"].values() for s in t["steps"]]
    return "\n".join([
        f"{link(f'benchmarks/results/{name}.json', page)}: {utc(found['started'])} UTC, "
        f"{machine['nproc']} cores ({machine['cpu_model']}), load average "
        f"{machine['load_average_at_start'][0]:.1f} at start, Python "
        f"{found['versions']['python']}, uvicorn {found['versions']['uvicorn']}, fastapi "
        f"{found['versions']['fastapi']}, commit {found['commit']['commit'][:7]}; Redis "
        f"{found['settings']['redis']}; open loop, {found['settings']['arrival']} arrivals, "
        f"{found['settings']['step_s']:g} s a step ({number(min(requests))}-"
        f"{number(max(requests))} requests a step); p99 a step, the knee the highest rate with "
        f"p99 < {found['settings']['budget_ms']:g} ms:", "",
        table(["target", *[f"{number(rate)} req/s" for rate in rates], "knee"], rows)])


def fraud_workers(r: Results, page: str) -> str:
    return workers_table(r, page, "fraud_workers")


def fraud_workers_coalesced(r: Results, page: str) -> str:
    return workers_table(r, page, "fraud_workers_coalesced")


BROKER_VARIANTS = {
    "default": "as before (tiered C1 + C2, no archive)",
    "appcds": "AppCDS archive",
    "c1": "`-XX:TieredStopAtLevel=1`",
    "appcds+c1": "AppCDS archive + `TieredStopAtLevel=1`",
}


def broker_start(r: Results, page: str) -> str:
    """benchmarks/broker_start.py's two runs: a node's CPU in its first seconds per JVM setting
    (broker_start.json), and the steady cost after two minutes of load (broker_start_steady)."""
    found, steady = r.need("broker_start"), r.need("broker_start_steady")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    rows = []
    for variant, s in found["summary"].items():
        rows.append([BROKER_VARIANTS.get(variant, variant),
                     f"{seconds(s['cold_cpu_first_10s'])} / {seconds(s['cold_cpu_first_20s'])}",
                     f"{seconds(s['restart_cpu_first_10s'])} / "
                     f"{seconds(s['restart_cpu_first_20s'])}",
                     seconds(s["restart_ready_s"]),
                     f"{number(s['produce_records_per_s'])} / "
                     f"{number(s['produce_brokers_cpu_us_per_record'], 1)} us"])
    def warm(variant: str, key: str) -> float:
        values = sorted(run["steady"]["produce_warm"][key] for run in steady["runs"]
                        if run["variant"] == variant)
        return float(values[len(values) // 2] if len(values) % 2 else
                     (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2)

    steady_rows = [[BROKER_VARIANTS.get(variant, variant),
                    f"{number(warm(variant, 'records_per_s'))}/s, "
                    f"{number(warm(variant, 'brokers_cpu_us_per_record'), 1)} us",
                    f"{number(s['produce_records_per_s'])}/s, "
                    f"{number(s['produce_brokers_cpu_us_per_record'], 1)} us",
                    f"{number(s['consume_records_per_s'])}/s, "
                    f"{number(s['consume_brokers_cpu_us_per_record'], 1)} us"]
                   for variant, s in steady["summary"].items()]
    warm_s = sorted(run["steady"]["produce_warm"]["seconds"] for run in steady["runs"])

    def footer(run: Json, what: str) -> str:
        machine = run["machine"]
        loads = [run_["load_average_before"][0] for run_ in run["runs"]]
        return (f"{link('benchmarks/results/' + what + '.json', page)}: {utc(run['date'])} UTC, "
                f"{machine['nproc']} shared cores ({machine['cpu']}), Kafka "
                f"{run['versions']['kafka']}, {run['versions']['java']}; "
                f"{run['args']['turns']} turns of {', '.join(run['summary'])} in that order, "
                f"medians; load average {min(loads):.1f} to {max(loads):.1f} at the starts")

    return "\n".join([
        footer(found, "broker_start") + f" (the archive {found['archive']['bytes'] / 1e6:.0f} MB):",
        "", table(["JVM setting", "a fresh cluster's node: CPU in its first 10 / 20 s",
                   "a node restarted into the running cluster: CPU in its first 10 / 20 s",
                   "restarted node ready after",
                   f"produce (acks=all, RF 3, {number(found['args']['messages'])} records of "
                   "200 B), a minute after the start: records/s / brokers' CPU a record"],
                  rows),
        "", footer(steady, "broker_start_steady")
        + f"; records produced until {steady['args']['warm_s']:.0f} s after the cluster was "
        f"ready ({warm_s[0]:.0f} to {warm_s[-1]:.0f} s of producing), then a measured pass of "
        f"{number(steady['args']['messages'])} to a topic of its own, then those consumed (the "
        "consumer's group join inside its time):", "",
        table(["JVM setting", "producing, the first two minutes: records/s, brokers' CPU a "
               "record", "then produce: records/s, brokers' CPU a record",
               "then consume: records/s, brokers' CPU a record"], steady_rows)])


def stream_latency_words(found: Json) -> list[str]:
    """Each open-loop stream run: its p99, or that the scorers fell behind; runs of the
    reshuffled mix (every run before session 8 had it) say so."""
    words = []
    mix = "" if found["args"].get("mix", "reshuffled") == "replay" else " (the reshuffled mix)"
    for run in found["latency"]:
        rate = f"{number(run['rate'])} tx/s offered, {run['processes']} scorers{mix}"
        if run["decisions_per_s"] < KEPT_UP * run["rate"]:
            words.append(f"{rate}: fell behind ({number(run['decisions_per_s'])} decided a "
                         f"second, p99 {number(run['latency_ms']['p99'] / 1000, 1)} s)")
        else:
            words.append(f"{rate}: p99 {number(run['latency_ms']['p99'])} ms")
    return words


def fraud_aims(r: Results, page: str) -> str:
    """The fraud design's aims (issue 14) beside what the committed results say."""
    stream, _ = stream_run(r)
    plateau = r.need("fraud_stream_processes")
    # fraud_stream.json's own 2-scorer drain wins over the plateau run's (the cores above use it)
    drains = {t["processes"]: t["lag_probe"]["tx_per_s"]
              for found in (plateau, stream) for t in found["throughput"]}
    best = max(drains, key=lambda n: drains[n])
    nproc = stream["machine"]["nproc"]
    latency = stream_latency_words(stream) + stream_latency_words(plateau)
    within = [run for found in (stream, plateau) for run in found["latency"]
              if run["rate"] >= 5000 and run["latency_ms"]["p99"] < FRAUD_BUDGET_MS]
    openloop = r.need("fraud_http_openloop")
    file = link("benchmarks/results/fraud_http_openloop.json", page)
    files = (f"{link('benchmarks/results/fraud_stream.json', page)}, "
             f"{link('benchmarks/results/fraud_stream_processes.json', page)}")

    def http(rate: int, limit_ms: float) -> tuple[str, str]:
        runs = sorted((x for x in openloop["runs"] if x["offered_rps"] == rate),
                      key=lambda x: float(x["p99_ms"]))
        words = "; ".join(f"{x['fraud_workers']} worker{'s' if x['fraud_workers'] > 1 else ''}: "
                          f"p99 {x['p99_ms']} ms, {number(int(x['requests']))} requests, "
                          f"{x['failures']} failed" for x in runs)
        met = [x for x in runs if float(x["p99_ms"]) <= limit_ms and int(x["failures"]) == 0]
        verdict = (f"**met** ({met[0]['fraud_workers']} worker"
                   f"{'s' if met[0]['fraud_workers'] > 1 else ''})") if met else "not met"
        return f"60 s, the full demo stack, {file}: {words}", verdict

    sweeps = sorted((r.root / "docs" / "evaluation" / "load-sweep").glob("*/sweep.json"))
    knees = []
    for path in sweeps:
        found = json.loads(path.read_text("utf-8"))
        if "fraud" in found["designs"]:
            knees.append(f"{number(found['designs']['fraud']['service']['knee_rps'])} "
                         f"({utc(found['generated'])[11:]})")
    rows = [
        ["stream: drain >= 10,000 tx/s",
         f"**{number(drains[2])} tx/s** with 2 scorers; "
         + ", ".join(f"{number(drains[n])} with {n}" for n in sorted(drains) if n != 2)
         + "".join(f"; the floor in the same run (the scorer's consumer and publisher, a fixed "
                   f"decision, no scoring): {number(f['lag_probe']['tx_per_s'])} tx/s with "
                   f"{f['processes']} processes" for f in stream.get("floor", []))
         + f" ({files})",
         "met" if drains[best] >= TX_PER_S else f"not met on {nproc} cores"],
        ["stream: 5,000 tx/s offered, event -> decision p99 < 50 ms",
         "; ".join(latency) + f" ({files})",
         "met" if within else "not met"],
        *[[f"HTTP: {number(rate)} req/s for 60 s, p99 <= {limit:g} ms", *http(rate, limit)]
          for rate, limit in FRAUD_HTTP_AIMS],
        ["a load sweep with the floor",
         "fraud knees in the committed sweeps, req/s (UTC): " + ", ".join(knees)
         + f" ({link('docs/evaluation/load-sweep', page)})", "built and run"],
    ]
    return table(["aim (issue 14)", "measured", "verdict"], rows)


def fraud_features_latency(r: Results, page: str) -> str:
    """benchmarks/fraud_features_online.py: one transaction's state and features, the writer."""
    found = r.need("fraud_features_online")
    meta, reads, writes, store = (found["meta"], found["reads"], found["writes"],
                                  found["store"])
    steps = (("total", "**record + read + features**"),
             ("read", "record and read (one round trip, 6 script calls + decode)"),
             ("features", "features (`batch_features`, n = 1)"))
    columns = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "mean_ms", "max_ms")
    rows = [[label, *[f"{reads[key][c]:.3f}" for c in columns]] for key, label in steps]
    tx = writes["transactions"]
    per_tx_us = writes["redis_server_s"] / tx["events"] * 1e6
    per_read = found["records_per_read"]
    return "\n".join([
        f"{link('benchmarks/results/fraud_features_online.json', page)}: {meta['date']}, "
        f"{meta['cpus']} cores, load average {meta['load_avg_1m']}, {meta['redis']}, redis-py "
        f"{meta['redis_py']} with {meta['parser']}, {meta['protocol']}, Python "
        f"{meta['python']}; {number(found['samples'])} samples.", "",
        table(["step (a batch of one)", *[c.removesuffix("_ms") + " ms" for c in columns]],
              rows), "",
        f"Records decoded per read (card + customer): median {per_read['median']:g}, p99 "
        f"{per_read['p99']:g}, max {per_read['max']}. The writer recorded the world's "
        f"{number(tx['events'])} transactions at **{number(tx['per_second'])} tx/s** (labels "
        f"{number(writes['labels']['per_second'])}/s) in batches of 500; Redis spent "
        f"{writes['redis_server_s']:.1f} s of its own time on them, "
        f"**{number(per_tx_us)} µs a transaction**. After the fill: {number(store['keys'])} "
        f"keys, {number(store['used_memory'] / 1e6)} MB `used_memory`.",
    ])


def stream_by_cores(r: Results, page: str) -> str:
    """benchmarks/fraud_stream_cores.py: the drain on one core and on two, in turns."""
    found = r.need("fraud_stream_cores")
    runs = found["runs"]
    rows = [[str(run["round"]), str(run["cores"]), number(run["tx_per_s"]),
             number(run["tx_per_s"] / run["cores"]), f"{run['machine_cores']:.2f}",
             number(run["scorer_us_per_tx"]), number(run["redis_us_per_tx"]),
             number(run["broker_us_per_tx"]), number(run["floor_tx_per_s"])]
            for run in sorted(runs, key=lambda run: (run["round"], run["cores"]))]
    ratios = "; ".join(f"round {row['round']}: x{row['scoring_ratio']:.2f} "
                       f"(floor x{row['floor_ratio']:.2f})" for row in found["ratios"])
    most = max(run["cores"] for run in runs)
    per_core = min(run["tx_per_s"] / run["cores"] for run in runs if run["cores"] == most)
    return "\n".join([
        f"{link('benchmarks/results/fraud_stream_cores.json', page)}: {utc(found['date'])} UTC, "
        f"{machine_words(found['machine']['cpu'])}, commit {found['commit'][:7]}; "
        f"{number(found['backlog'])} transactions drained by {found['scorers']} scorers in each "
        f"run, then by the floor's {found['scorers']} processes (a fixed decision, no scoring); "
        f"every process of a run under `taskset -c` on the cores it was given, the core sets in "
        f"turns.", "",
        table(["round", "cores", "tx/s", "tx/s a core", "cores used", "scorer µs a tx",
               "Redis µs a tx", "broker µs a tx", "floor tx/s"], rows), "",
        f"Two cores' rate over one's: {ratios}. At the {most}-core runs' lowest rate a core "
        f"({number(per_core)} tx/s), 10,000 tx/s takes **{math.ceil(TX_PER_S / per_core)} "
        f"cores** laid out as here.",
    ])


def kafka_clients(r: Results, page: str) -> str:
    """benchmarks/kafka_clients.py: the two adapters side by side."""
    found = r.need("kafka_clients")
    median, setup = found["median"], found["setup"]
    py, rd = median["kafka-python"], median["confluent"]
    rows = []
    for way in ("produce", "consume"):
        rate = rd[way]["msg_per_s"] / py[way]["msg_per_s"]
        cpu = py[way]["cpu_s_per_10k"] / rd[way]["cpu_s_per_10k"]
        rows.append([f"{way}, msg/s", number(py[way]["msg_per_s"]),
                     f"**{number(rd[way]['msg_per_s'])}**", f"{rate:.1f}x"])
        rows.append([f"{way}, CPU s per 10k msgs", f"{py[way]['cpu_s_per_10k']:.2f}",
                     f"**{rd[way]['cpu_s_per_10k']:.3f}**", f"{cpu:.0f}x less"])
    client_s = py["produce"]["cpu_s_per_10k"] + py["consume"]["cpu_s_per_10k"]
    rd_s = rd["produce"]["cpu_s_per_10k"] + rd["consume"]["cpu_s_per_10k"]
    versions = found["versions"]
    return "\n".join([
        f"{link('benchmarks/results/kafka_clients.json', page)}: {utc(found['date'])} UTC, "
        f"{found['machine']['cpus']} cores ({found['machine']['cpu']}), load average "
        f"{found['load_before'][0]:.1f} before; broker {versions['broker']}, kafka-python "
        f"{versions['kafka-python']}, confluent-kafka {versions['confluent-kafka']} (librdkafka "
        f"{versions['librdkafka']}), Python {found['machine']['python']}:", "",
        table([f"median of {setup['repeats']} runs x {number(setup['messages'])} messages",
               "kafka-python", "confluent-kafka", "ratio"], rows), "",
        f"At 10,000 tx/s a stream scorer consumes and produces 10,000 messages a second: with "
        f"kafka-python {py['consume']['cpu_s_per_10k']:.2f} + "
        f"{py['produce']['cpu_s_per_10k']:.2f} = {client_s:.1f} CPU seconds every second for "
        f"the client alone; with librdkafka {rd_s:.2f} s. {kafka_spread(found)}",
    ])


def kafka_spread(found: Json) -> str:
    """How far the runs of one client spread, and the ratio within each run pair."""
    runs: dict[int, dict[str, Json]] = {}
    for run in found["runs"]:
        runs.setdefault(run["repeat"], {})[run["client"]] = run
    pairs = [pair for pair in runs.values() if len(pair) == 2]

    def spread(way: str) -> str:
        ratios = [p["kafka-python"][way]["cpu_s_per_10k"] / p["confluent"][way]["cpu_s_per_10k"]
                  for p in pairs]
        return f"{min(ratios):.0f}-{max(ratios):.0f}x"

    rates = [run["produce"]["msg_per_s"] for run in found["runs"] if run["client"] == "confluent"]
    return (f"The runs are noisy (a shared machine): confluent's produce ranged "
            f"{number(min(rates) / 1000)}k-{number(max(rates) / 1000)}k msg/s over its runs; "
            f"runs alternate between the clients, and within each of the {len(pairs)} pairs "
            f"librdkafka used {spread('produce')} less CPU per produced message and "
            f"{spread('consume')} less per consumed one. The ratio, not the absolute rate, is "
            "what this run measures.")


def slo_csv(path: Path) -> Json:
    with path.open(encoding="utf-8") as f:
        return dict(next(csv.DictReader(f)))


def served_share(path: Path, source: str) -> float:
    with path.open(encoding="utf-8") as f:
        counts = {row["served_from"]: int(row["answers"]) for row in csv.DictReader(f)}
    total = sum(n for name, n in counts.items() if name != "malformed")
    return counts.get(source, 0) / total if total else 0.0


def _run_note(run_dir: Path) -> str:
    """What a run's note.txt says of its conditions (the cache warm or cold), if it has one."""
    note = run_dir / "note.txt"
    return f" ({note.read_text('utf-8').strip()})" if note.exists() else ""


def _other_realistic_runs(r: Results, newest: Path, page: str) -> str:
    """The earlier realistic-traffic runs, each with its p99, cache share and note."""
    runs = [d for d in sorted((r.root / "docs" / "evaluation").glob("recs-1000-*"))
            if d != newest]
    if not runs:
        return ""
    words = []
    for run_dir in runs:
        slo = slo_csv(run_dir / "openloop_slo.csv")
        share = served_share(run_dir / "openloop_served_from.csv", "cache")
        words.append(f"{link(str(run_dir.relative_to(r.root)) + '/openloop_slo.csv', page)}: "
                     f"{number(int(slo['requests']))} requests, p99 {slo['p99_ms']} ms, "
                     f"{round(100 * share)} % cached{_run_note(run_dir)}")
    return "; earlier runs: " + "; ".join(words)


def recs_targets(r: Results, page: str) -> str:
    """Issue 15's targets for the recommender beside the committed runs that answer them."""
    evaluation = r.root / "docs" / "evaluation"
    freshness = sorted(evaluation.glob("freshness-*/freshness.json"))[-1]
    probes = json.loads(freshness.read_text("utf-8"))
    uncached = slo_csv(freshness.parent / "openloop_slo.csv")
    computed = served_share(freshness.parent / "openloop_served_from.csv", "computed")
    realistic_dir = sorted(evaluation.glob("recs-1000-*"))[-1]
    realistic = slo_csv(realistic_dir / "openloop_slo.csv")
    cached = served_share(realistic_dir / "openloop_served_from.csv", "cache")
    _, sweep = r.sweep("recs-uncached")
    knee = sweep["designs"]["recs"]["service"]["knee_rps"]
    knee_uncached = sweep["designs"]["recs-uncached"]["service"]["knee_rps"]
    memory = r.need("recs_memory")
    cpu = r.need("recs_cpu")
    per_core = {round(100 * c["hit_ratio"]): c["req_s_per_core"] for c in cpu["capacity"]}
    run = r.load_run()

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    fresh_ok = probes["summary"]["passed"]
    uncached_ok = (uncached["verdict"] == "PASS" and computed == 1.0
                   and float(uncached["rps"]) >= KEPT_UP * RECS_UNCACHED_AIM)
    realistic_ok = (realistic["verdict"] == "PASS"
                    and float(realistic["rps"]) >= KEPT_UP * RECS_REALISTIC_AIM)
    fresh_link = link(str(freshness.parent.relative_to(r.root)) + "/openloop_slo.csv", page)
    rows = [
        [f"uncached: >= {number(RECS_UNCACHED_AIM)} req/s open loop, p99 < {RECS_BUDGET_MS} ms, "
         "0 errors, every answer computed",
         f"during `make load-freshness` ({utc(probes['when'])} UTC, {fresh_link}): "
         f"{number(float(uncached['rps']))} req/s reached, {number(int(uncached['requests']))} "
         f"requests, {round(100 * computed)} % computed, {uncached['failures']} failed, p99 "
         f"{uncached['p99_ms']} ms; the sweep's uncached knee {number(knee_uncached)} req/s",
         verdict(uncached_ok)],
        [f"realistic traffic: >= {number(RECS_REALISTIC_AIM)} req/s, p99 < {RECS_BUDGET_MS} ms, "
         "cache share stated",
         f"the sweep's knee {number(knee)} req/s; {number(RECS_REALISTIC_AIM)} req/s offered for "
         f"{round(int(realistic['requests']) / RECS_REALISTIC_AIM)} s "
         f"({link(str(realistic_dir.relative_to(r.root)) + '/openloop_slo.csv', page)}): "
         f"{number(float(realistic['rps']))} req/s reached, p99 {realistic['p99_ms']} ms, "
         f"{round(100 * cached)} % of answers from the cache{_run_note(realistic_dir)}"
         f"{_other_realistic_runs(r, realistic_dir, page)}", verdict(realistic_ok)],
        ["a watch changes that user's next list within 1 s under the uncached run",
         f"p99 {probes['summary']['p99_ms']} ms over {number(probes['summary']['probes'])} "
         "probes (above)", verdict(fresh_ok)],
        ["`make load` passes at its defaults (recs 300, fraud 500)",
         f"the newest committed run ({run.stamp} UTC on {run.machine}, {run.mix} mix): "
         f"{'every gate PASS' if run.passed else 'not every gate PASS'} (the make-load table "
         "above)"
         + other_machine_load(r, run), verdict(run.passed)],
        ["memory per user and per title; 200 M users",
         f"{number(memory['bytes_per_user']['mean'])} B a seeded user, "
         f"{size(USERS * memory['bytes_per_user']['mean'])} and "
         f"{memory['projection']['masters']} masters of {number(memory['projection']['shard_gb'])}"
         f" GB for 200 M ({page_link('docs/interview/recommendations.md', page)})", "measured"],
        ["capacity plan from measured per-core rates",
         f"the cores table above: {number(per_core[0])} req/s a core uncached, "
         f"{number(per_core[50])} at half the answers cached", "measured"],
    ]
    return table(["target", "measured", ""], rows)


def records_writer(r: Results, page: str) -> str:
    """benchmarks/records_writer.py: fraud decisions from Kafka into PostgreSQL."""
    found = r.need("records_writer")
    setup = found["setup"]
    rows = []
    for batch, median in sorted(found["throughput_median"].items(), key=lambda x: -int(x[0])):
        runs = [run["decisions_per_s"] for run in found["throughput_runs"]
                if run["max_batch"] == int(batch)]
        rows.append([f"throughput, a backlog of {number(setup['backlog'])} drained, polled "
                     f"batches of {number(int(batch))}",
                     f"**{' and '.join(number(x) for x in runs)} decisions/s** (median "
                     f"{number(median)})"])
    for steady in found["steady"]:
        lag = steady["lag_ms"]
        rows.append([f"lag at a steady {number(steady['rate_per_s'])} decisions/s, "
                     f"{steady['seconds']:g} s ({number(steady['decisions'])} decisions), event "
                     "time to commit",
                     f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"])
    loads = [run["load"][0] for run in [*found["throughput_runs"], *found["steady"]]]
    best = max(found["throughput_median"].values())
    openloop = max(x["offered_rps"] for x in r.need("fraud_http_openloop")["runs"]
                   if x["verdict"] == "PASS")
    return "\n".join([
        f"{link('benchmarks/results/records_writer.json', page)}: {utc(found['date'])} UTC, "
        f"{found['machine']['cpus']} shared cores, load average {min(loads):.0f} to "
        f"{max(loads):.0f} during the runs, PostgreSQL "
        f"{found['versions']['postgresql'].split()[0]}, "
        f"{setup['writer_threads']} writer thread, events of {setup['event_bytes']} bytes:", "",
        table(["what", "measured"], rows), "",
        f"One writer thread drains {number(best / openloop, 1)} times the {number(openloop)} "
        "req/s the fraud service held for a minute "
        f"({link('benchmarks/results/fraud_http_openloop.json', page)}).",
    ])


def lake_sink(r: Results, page: str) -> str:
    """benchmarks/lake_sink.py: every topic to Parquet, throughput and publish -> durable lag."""
    found = r.need("lake_sink")
    backlog = found["backlog"]
    rows = [["throughput, one sink process", f"{number(backlog['events'])} events already on "
             "the topics",
             f"{number(backlog['rows_per_s'])} rows/s ({backlog['wall_s']:g} s; "
             f"{backlog['cpu_s_per_10k']:.2f} CPU s per 10,000 rows; {backlog['files']} files)"]]
    for steady in found["steady"]:
        lag = {k: v / 1000 for k, v in steady["lag_ms"].items()}
        rows.append([f"lag publish -> durable in Parquet, {steady['flush_interval_s']:g} s "
                     "flushes",
                     f"{number(steady['rate_per_s'])} events/s for {steady['seconds']} s "
                     f"({number(steady['events'])} events)",
                     f"p50 {lag['p50']:.1f} s, p99 {lag['p99']:.1f} s, max {lag['max']:.1f} s "
                     f"({steady['files']} files)"])
    rate = max(s["rate_per_s"] for s in found["steady"])
    return "\n".join([
        f"{link('benchmarks/results/lake_sink.json', page)}: {utc(found['date'])} UTC, "
        f"{found['machine']['cpus']} shared cores, load average {found['load_before'][0]:.1f} "
        f"before and {found['load_after'][0]:.1f} after, pyarrow {found['versions']['pyarrow']}, "
        f"confluent-kafka {found['versions']['confluent-kafka']}, {found['setup']['topics']}, "
        f"{found['setup']['partitions']} partitions:", "",
        table(["measure", "load", "result"], rows), "",
        f"One process drains {number(backlog['rows_per_s'] / rate)} times the "
        f"{number(rate)} events/s of the steady runs.",
    ])


def io_change(r: Results, page: str, name: str, stage: str, what: str) -> str:
    """One stage of a benchmarks/stream_io.py result, before and after the commit it measured;
    with `stage` the only one the commit changed, how far the others moved is the noise."""
    found = r.need(name)
    median, setup, commits = found["median"], found["setup"], found["commits"]
    most = max(found["after_over_before"].values())
    least = min(found["after_over_before"].values())
    noise = ("" if stage == "total outside scoring" else
             f" Between the two, the stages ran {least:.2f}x to {most:.2f}x their earlier time, "
             "those the change did not touch included: the machine's noise, so read the figures "
             "as orders of magnitude.")
    return (f"{what}: a median {median['before'][stage]:.1f} µs an event before, "
            f"{median['after'][stage]:.1f} after (commits {commits['before'][:7]} and "
            f"{commits['after'][:7]}, {number(setup['events'])} events, {setup['repeats']} "
            f"alternating runs, {link(f'benchmarks/results/{name}.json', page)}, "
            f"{utc(found['date'])} UTC, load average {found['load_before'][0]:.1f} before)."
            f"{noise}")


def stream_io(r: Results, page: str) -> str:
    return io_change(r, page, "stream_io", "total outside scoring",
                     "The stream's I/O around the batch (poll, decode, validate, dedupe, encode, "
                     "publish)")


def fraud_state_calls(r: Results, page: str) -> str:
    """The scorer's and Redis's CPU per transaction with each change to the state's calls against
    the calls without it, side by side in one run (benchmarks/fraud_state_calls.py)."""
    found = r.need("fraud_state_calls")
    modes = found["modes"]
    before_copies = modes.get("gathered_no_copies", modes["gathered"])
    per = modes["per_entity"]
    text = (
        f"Script calls gathered (one call for up to {found['entities_per_call']['gathered']} "
        "entities of a view, instead of one per entity and one per decision), side by side on "
        f"one Redis: the scorer's CPU {per['client_cpu_us_per_tx']:.0f} -> "
        f"{before_copies['client_cpu_us_per_tx']:.0f} µs a transaction, Redis's "
        f"{per['redis_cpu_us_per_tx']:.0f} -> {before_copies['redis_cpu_us_per_tx']:.0f} µs "
        f"({number(per['transactions'])} transactions each in batches of 500, "
        f"{link('benchmarks/results/fraud_state_calls.json', page)}, {found['date']}, "
        f"load average {found['load_avg_1m']}).")
    every = modes.get("gathered_trim_every_call")
    if every is not None:
        text += (f" In the same run, trimming the sorted sets in one call of "
                 f"{found['trim_every']['gathered']} instead of every call: Redis's "
                 f"{every['redis_cpu_us_per_tx']:.0f} -> "
                 f"{before_copies['redis_cpu_us_per_tx']:.0f} µs a transaction.")
    if "gathered_no_copies" in modes:
        copies = modes["gathered"]
        text += (" And the client's checked copies of the logs with hourly TTL refreshes "
                 f"(`copies.py`, {number(found['log_copies']['gathered'])} logs) against whole "
                 f"logs and a refresh a write: Redis's {before_copies['redis_cpu_us_per_tx']:.0f}"
                 f" -> {copies['redis_cpu_us_per_tx']:.0f} µs a transaction, the scorer's "
                 f"{before_copies['client_cpu_us_per_tx']:.0f} -> "
                 f"{copies['client_cpu_us_per_tx']:.0f} µs (every mode scored the same "
                 f"{found['warm_up'].split(' ')[0]} transactions first, untimed).")
    return text


def decision_event_cost(r: Results, page: str) -> str:
    return io_change(r, page, "decision_event_reasons", "encode",
                     "Encoding a decision event with every reason")


def fraud_policy(r: Results, page: str) -> str:
    """The shipped fraud policy on the replayed test week, and its cost against the cheapest
    thresholds (benchmarks/fraud_policy_eval.py -> docs/evaluation/fraud-policy.json)."""
    path = "docs/evaluation/fraud-policy.json"
    found = json.loads((r.root / path).read_text("utf-8"))
    week, shipped, cheapest = found["week"], found["shipped"], found["cheapest_in_sample"]
    holdout = found["holdout"]
    scores = {s["action"]: s for s in shipped["scores"]}
    decline, review = scores["decline"], scores["review"]
    both = scores["review or decline"]

    def at(t: Json) -> str:
        return (f"review >= {t['review_at']:.2f}, decline >= {t['decline_at']:.2f}, the model "
                f"alone >= {t['ml_decline_at']:.2f}")

    fitted, kept = holdout["fitted_on_score_days"], holdout["shipped_on_score_days"]
    return (
        f"The test week ({number(week['transactions'])} transactions, {number(week['frauds'])} "
        f"frauds) replayed through the service's own pipeline, all {found['rules']} rules with "
        f"the production model ({link(path, page)}, {utc(found['when'])} UTC): declines "
        f"precision {decline['precision']:.3f}, recall {decline['recall']:.3f}, false-positive "
        f"rate {decline['false_positive_rate']:.5f}; reviews precision {review['precision']:.3f}, "
        f"recall {review['recall']:.3f}; together {both['recall']:.3f} of the frauds reach an "
        f"action. With the stated cost matrix ({found['cost_matrix']['describe']}) the shipped "
        f"thresholds cost {number(shipped['total_cost'])} on the week with "
        f"{shipped['reviews_per_day']:.1f} reviews a day; the cheapest on the grid "
        f"({at(cheapest['thresholds'])}) costs {number(cheapest['total_cost'])} with "
        f"{cheapest['reviews_per_day']:.1f} reviews a day, in sample. Fitted on days "
        f"{holdout['fit_days']} and scored on days {holdout['score_days']} it costs "
        f"{number(fitted['total_cost'])} with {fitted['reviews_per_day']:.1f} reviews a day, "
        f"against the shipped {number(kept['total_cost'])} with "
        f"{kept['reviews_per_day']:.1f}.")


def recs_feature_logging(r: Results, page: str) -> str:
    """benchmarks/recs_feature_logging.py: what logging the served features costs a request."""
    found = r.need("recs_feature_logging")
    rows = []
    for variant, result in found["variants"].items():
        cpu, added = result["cpu_ms_per_request"], result["added_cpu_ms"]
        share, size_ = result["added_share"], result["impression_bytes"]
        for path in ("computed", "cached"):
            rows.append([f"{variant}, {path}", f"{cpu[path + '_off']:.3f} ms",
                         f"{cpu[path + '_on']:.3f} ms",
                         f"+{added[path]:.3f} ms (+{round(100 * share[path])} %)",
                         f"{size_['off']:,.0f} -> {size_['on']:,.0f}" if path == "computed"
                         else ""])
    machine = found["machine"]
    return "\n".join([
        f"In process, one thread, BLAS {found['blas_threads']} thread, the production ranker's "
        f"{number(found['titles'])} titles, {found['users']} users x {found['rounds']} rounds, "
        f"logging on and off interleaved, median "
        f"({link('benchmarks/results/recs_feature_logging.json', page)}: "
        f"{utc(found['when'])} UTC, {machine['cpus']} shared cores at load "
        f"{machine['load_1m']:.2f}):", "",
        table(["path", "off", "on", "added", "impression bytes"], rows)])


def recs_shadow(r: Results, page: str) -> str:
    """benchmarks/recs_shadow.py: a shadow ranker on every computed request, off and on."""
    found = r.need("recs_shadow")
    rows = []
    for variant, result in found["variants"].items():
        off, on = result["off"], result["on"]
        rows.append([variant, f"{off['wall_p50_ms']:.2f} / {on['wall_p50_ms']:.2f} ms",
                     f"{off['wall_p99_ms']:.1f} / {on['wall_p99_ms']:.1f} ms",
                     f"{off['request_thread_cpu_ms']:.3f} / {on['request_thread_cpu_ms']:.3f} ms",
                     f"{on['shadow_cpu_ms_per_job']:.2f} ms"])
    machine = found["machine"]
    return "\n".join([
        f"Share {found['share']:g}, in process, every list computed, {found['users']} users x "
        f"{found['rounds']} rounds per mode ({link('benchmarks/results/recs_shadow.json', page)}: "
        f"{utc(found['when'])} UTC, {machine['cpus']} shared cores at load "
        f"{machine['load_1m']:.2f}):", "",
        table(["variant", "wall p50 off / on", "wall p99 off / on",
               "request thread CPU off / on", "shadow CPU per job"], rows)])


def recs_after_promotion(r: Results, page: str) -> str:
    """benchmarks/recs_after_promotion.py: make demo's recommendation gate right after its
    promotion, the recommender before and after a change, in turns."""
    found = r.need("recs_after_promotion")
    settings, machine = found["settings"], found["machine"]

    def cell(load: Json) -> str:
        return (f"{load['p99_ms']:g} ms, {round(100 * load['cache_share'])} % cached, "
                f"{load['verdict']}")
    rows = [[f"{run['turn']}, {run['code']}", f"{run['started']['load_average'][0]:.1f}",
             cell(run["loads"]["locust"]), cell(run["loads"]["openloop"]),
             f"{run['loads']['openloop_uncached']['p99_ms']:g} ms"] for run in found["runs"]]
    floors = found["floors"]
    worst = "; ".join(
        f"{code}: closed {floors[code]['locust']['p99_ms_worst']:g} ms, open "
        f"{floors[code]['openloop']['p99_ms_worst']:g} ms, uncached "
        f"{floors[code]['openloop_uncached']['p99_ms_worst']:g} ms" for code in floors)
    before = found["versions"]["before"]
    return "\n".join([
        f"make demo's end replayed on servers of its own, then `make load`'s recs half at "
        f"{settings['rps']:g} req/s for {settings['duration']} a loop, and the same open loop "
        f"uncached; `before` is {before['ref']} ({before['commit'][:7]}), `after` "
        f"{found['versions']['after']['commit'][:7]}, in turns "
        f"({link('benchmarks/results/recs_after_promotion.json', page)}: {utc(found['date'])} "
        f"UTC, {machine['cpu']}, {machine['cpus']} shared cores; {settings['world_users']:,} "
        f"world users asked in the baseline and in the round):", "",
        table(["turn, code", "load (1 min) at start", "closed loop (Locust)", "open loop",
               "open loop, uncached: p99"], rows), "",
        f"Worst p99 of the turns: {worst}."])


def fraud_stream_world(r: Results, page: str) -> str:
    """The world the stream benchmark drains, and that every transaction was decided."""
    stream, run = stream_run(r, processes=1)
    world, actions = stream["world"], run["metrics"]["actions"]
    decided = "Every one" if run["decisions"] == run["backlog"] else number(run["decisions"])
    return (f"The world: {number(world['customers'])} customers "
            f"({number(world['backlog_cards'])} cards in the backlog), the backlog its last "
            f"{world['backlog_days']:.1f} days ({number(run['backlog'])} transactions, fraud rate "
            f"{100 * world['backlog_fraud_rate']:.2f} %) in their own order and spacing behind "
            f"{number(world['history_transactions'])} transactions of history. {decided} of the "
            f"{number(run['backlog'])} was decided with {run['processes']} scorer, and the "
            f"decisions by action add up to {number(sum(actions.values()))} ("
            + ", ".join(f"{action} {number(n)}" for action, n in actions.items()) + ").")


def _largest(psi: dict[str, float]) -> str:
    value, column = max((v, c) for c, v in psi.items() if c != "tx_during_weekend")
    return f"`{column}` {value:.3f}"


def fraud_reference_burn_in(r: Results, page: str) -> str:
    """benchmarks/fraud_reference_burn_in.py: a retrain's reference with and without the
    trainer's burn-in, against the live vectors of make shadow-run's last 3 days."""
    found = r.need("fraud_reference_burn_in")
    rows = []
    for w in found["worlds"]:
        cells = [f"{w['days']} days", f"{w['windows']['train']}"]
        for name in ("no_burn_in", "burn_in"):
            side = w[name]
            if "psi" not in side:
                cells += ["0 rows: not trained (NotEnoughData)", "-"]
                continue
            over = ", ".join(f"`{c}` {side['psi'][c]:.3f}" for c in side["over_threshold"])
            cells += [f"{number(side['train_rows'])} rows ({number(side['burned_in'])} left out)",
                      over or f"none; largest {_largest(side['psi'])}"]
        rows.append(cells)
    machine, scenario = found["machine"], found["scenario"]
    return "\n".join([
        f"{link('benchmarks/results/fraud_reference_burn_in.json', page)} ({utc(found['date'])} "
        f"UTC, {machine['cpus']} shared cores, load average {machine['load_average'][0]:.1f}; "
        f"{number(scenario['customers'])} customers, seed {scenario['seed']}, prices "
        f"x{scenario['price_factor']:g}; live: each world's last 3 days, "
        f"{number(min(w['live_rows'] for w in found['worlds']))}-"
        f"{number(max(w['live_rows'] for w in found['worlds']))} transactions):", "",
        table(["world", "training week (as of phase A's end)", "rows, no burn-in",
               f"PSI > {scenario['threshold']:g} against their reference",
               f"rows, burn-in {scenario['burn_in_days']} d",
               f"PSI > {scenario['threshold']:g} against their reference"], rows)])


def _clock(stamp: str | None) -> str:
    return "never" if stamp is None else stamp[11:19]


def _seconds(start: str, end: str | None) -> str:
    if end is None:
        return "-"
    gap = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return f"{gap.total_seconds():.0f} s"


def fraud_lifecycle_stack(r: Results, page: str) -> str:
    """benchmarks/fraud_lifecycle_stack.py (make shadow-run): the alert's timeline, the gate,
    the promotion of the challenger with the alert firing, and the watch after it resolved."""
    found = r.need("fraud_drift_stack")
    t, retrain, scenario = found["timeline"], found["retrain"], found["scenario"]
    marks, counts, hold = found["marks"], found["counts"], t["hold"]
    fired = next(c for c in t["state_changes"] if c["state"] == "firing")
    before = [s for s in found["samples"] if s["at"] <= t["promoted"]][-1]
    machine = found["machine"]
    since = [s for s in found["samples"] if t["cleared"] and s["at"] >= t["cleared"]]
    values = [s["max_input_psi"] for s in since if s["max_input_psi"] is not None]
    watched = (f"stayed inactive, its gauges read, in all {hold['samples']} samples over the "
               f"next {hold['watched_s']} s (asked: {hold['asked_s']:.0f} s) to "
               f"{_clock(since[-1]['at'])}" if hold["stayed_inactive"]
               else f"did **not** stay inactive: states {', '.join(hold['states'])} in the "
                    f"{hold['watched_s']} s after")
    cleared = (f"**resolved** at {_clock(t['cleared'])}, "
               f"{_seconds(t['promoted'], t['cleared'])} after the promotion, and {watched} "
               f"while phase C's traffic flowed (drained at {_clock(marks['phase_c_drained'])}); "
               f"the largest alerted input's PSI {min(values):.3f}-{max(values):.3f}"
               if t["cleared"] else "**did not resolve** within "
               f"{_seconds(t['promoted'], found['samples'][-1]['at'])}")
    state = (f"{before['state']} on " + ", ".join(f"`{c}`" for c in before["columns"])
             if before["columns"] else before["state"])
    again = (f" (it fired again at {_clock(marks['alert_firing_phase_b'])}: phase B's restart "
             "of the scorer had dropped v1's gauges, v1 still serving the shifted prices)"
             if "alert_firing_phase_b" in marks else " (phase B, v1 still serving)")
    pending = [c for c in t.get("settling", []) if c["state"] != "inactive"]
    settle = ("" if not pending or not t["cleared"] else
              f" v{found['challenger_version']}'s first windows (500 rows: about "
              f"{72 * 500 / counts['phase_c_events']:.0f} hours of phase C's 3 days, one "
              "stretch of the day) read " + ", ".join(
                  f"`{c}`" for c in sorted({c for p in pending for c in p["columns"]}))
              + f" over the threshold: {' then '.join(sorted({p['state'] for p in pending}))} "
              f"for {_seconds(pending[0]['at'], t['cleared'])}, as the window grew (under "
              f"`for: {found['alert']['for']}`: it never fired).")
    pace = (f"; phase C's {number(counts['phase_c_events'])} events paced at "
            f"{counts['phase_c_events_per_s']}/s" if "phase_c_events_per_s" in counts else "")
    return "\n".join([
        f"Measured {utc(found['date'])} UTC on {machine['cpus']} shared cores (load average "
        f"{machine['load_average'][0]:.1f} at the end; {number(scenario['customers'])} customers, "
        f"{scenario['days']} days, {number(counts['events'])} events; "
        f"{link('benchmarks/results/fraud_drift_stack.json', page)}, the run "
        f"{found['run_seconds']} s):", "",
        f"- **Drift fires**: phase A published at {_clock(t['drift_started'])}, "
        f"`ModelInputDrift` firing at {_clock(t['first_fired'])} on "
        + ", ".join(f"`{c}`" for c in fired["columns"]) + ".",
        f"- **Retrain**: training week {retrain['windows']['train']}: "
        f"{number(retrain['train_rows'])} rows ({retrain['train_frauds']} fraud) after the "
        f"burn-in left out {number(retrain['burned_in']['train'])} (and "
        f"{number(retrain['burned_in']['test'])} test rows); gate: {found['gate']}.",
        f"- **Promotion**: v{found['challenger_version']} promoted at {_clock(t['promoted'])}, "
        f"the alert then {state}{again}{pace}; the alert {cleared}.{settle}"])


def _retrain_cell(run: Json) -> str:
    """make retrain-fraud's outcome on one seeded lake, in a table cell."""
    if run["retrain"] is None:
        said = " ".join(run["retrain_output"])
        train = re.search(r"train (\S+) rows", said)
        left = re.search(r"left out (\S+) training", said)
        return (f"**refused** in {run['retrain_s']:.0f} s (exit {run['retrain_exit']}, "
                f"NotEnoughData): {number(int(train[1])) if train else '?'} training rows, the "
                f"burn-in left out {number(int(left[1])) if left else '?'}")
    g = run["retrain"]
    verdict = "**passed**" if g["verdict"]["passed"] else "**refused**"
    outcome = f"v{g['registered']} registered" if g["registered"] else "nothing registered"
    interval = g.get("gain_interval")
    gain = ("" if interval is None else
            f" (gain 95 % interval {interval[0]:+.3f} to {interval[1]:+.3f})")
    return (f"{verdict} in {run['retrain_s']:.0f} s: AP {g['challenger']['average_precision']:.3f}"
            f" against v{g['production_version']}'s {g['production']['average_precision']:.3f}"
            f"{gain}; {outcome}")


def fraud_retrain_dev_stack(r: Results, page: str) -> str:
    """benchmarks/fraud_retrain_dev_stack.py: make models, make seed and make retrain-fraud on
    the dev stack's data, the seed's cost before and after the dev world grew."""
    found = r.need("fraud_retrain_dev_stack")
    machine, world, runs = found["machine"], found["world"], found["runs"]

    def cpu(run: Json) -> float:
        return float(run["seed_cpu"]["stack_s"] + run["seed_cpu"]["seeder_s"])

    rows = [[f"{run['transaction_days']:g} days" + (" (before)" if run["transaction_days"]
                                                    < world["days"] else " (now)"),
             f"{number(run['lake']['transactions'])} ({run['lake']['days']:.1f} days), "
             f"{number(run['lake']['labels'])} labels",
             f"{run['seed_s']:.0f} s", f"{cpu(run):.0f} s",
             f"{run['load_average']['before'][0]:.1f} / {run['load_average']['after'][0]:.1f}",
             f"{run['lake_after_seed_s']:.0f} s", _retrain_cell(run)]
            for run in runs]
    by_days: dict[float, list[Json]] = {}
    for run in runs:
        by_days.setdefault(run["transaction_days"], []).append(run)
    now = by_days[max(by_days)]
    passed = next((run["retrain"] for run in now if run["retrain"]), None)
    detail = "" if passed is None else (
        f" On the {max(by_days):g}-day lake the retrain's windows: train "
        f"{passed['windows']['train']}, {number(passed['train_rows'])} rows "
        f"({passed['train_frauds']} fraud), test {passed['windows']['test']}, "
        f"{number(passed['test_rows'])} rows ({passed['test_frauds']} fraud), the burn-in "
        f"left out {number(passed['burned_in']['train'])} and "
        f"{number(passed['burned_in']['test'])}, {passed['served_share']:.0%} of vectors as "
        f"served; challenger AUC {passed['challenger']['auc_roc']:.3f}, card precision@100 "
        f"{passed['challenger']['card_precision_at_100']:.3f}, production's "
        f"{passed['production']['auc_roc']:.3f} and "
        f"{passed['production']['card_precision_at_100']:.3f}; gate: "
        f"{passed['verdict']['reason']}.")
    cost = {c["days"]: c for c in found["fraud_models_cost"]}
    short, long = cost[58], cost[world["days"]]
    registered = [run["retrain"]["registered"] for run in now
                  if run["retrain"] and run["retrain"]["registered"]]
    shared = ("" if len(registered) < 2 else
              " The rounds share one model repository, so each passing retrain registers the "
              "next version (" + ", ".join(f"v{v}" for v in registered) + "), each unpromoted "
              f"and judged against v{found['production_version']}.")
    delta = ""
    if len(by_days) > 1:
        before = by_days[min(by_days)]
        wall = [sum(run["seed_s"] for run in group) / len(group) for group in (before, now)]
        fastest = [min(run["seed_s"] for run in group) for group in (before, now)]
        cpus = [sum(cpu(run) for run in group) / len(group) for group in (before, now)]
        delta = (f" The seed's cost ({len(now)} alternating seeds each): the fastest "
                 f"{fastest[0]:.0f} s -> {fastest[1]:.0f} s (+{fastest[1] - fastest[0]:.0f} s), "
                 f"the mean {wall[0]:.0f} s -> {wall[1]:.0f} s (+{wall[1] - wall[0]:.0f} s: the "
                 f"other jobs' load moved it); CPU {cpus[0]:.0f} -> {cpus[1]:.0f} seconds "
                 f"(x{cpus[1] / cpus[0]:.2f}, for "
                 f"{number(now[0]['lake']['transactions'] / before[0]['lake']['transactions'], 2)}"
                 " times the transactions; the viewing history is the same). `make demo` grows by "
                 "the seed's difference, its other steps unchanged.")
    v = found["versions"]
    return "\n".join([
        f"{link('benchmarks/results/fraud_retrain_dev_stack.json', page)} ({utc(found['date'])} "
        f"UTC, {machine['cpus']} cores shared with other jobs, load average "
        f"{found['load_average_before'][0]:.1f} before and {machine['load_average'][0]:.1f} at "
        f"the end; scikit-learn {v['scikit_learn']}, onnxruntime {v['onnxruntime']}, DuckDB "
        f"{v['duckdb']}): `make models` on the dev world ({number(world['customers'])} "
        f"customers, {world['days']} days from {world['start_date']}, seed {world['seed']}) in "
        f"{found['make_models_s']:.0f} s, fraud v{found['production_version']} production; then "
        "each seed on a fresh stack of its own (Redis, Kafka, PostgreSQL, the stream processor "
        "and the lake sink on free ports) and `make retrain-fraud` as of its end:", "",
        table(["seed (`--transaction-days`)", "the lake's transactions", "`make seed` (waits "
               "for the stream)", "CPU of the stack and the seeder", "load average before / "
               "after", "the lake caught up after", "`make retrain-fraud`"], rows), "",
        f"`make models`' fraud part (world and training, in one process): "
        f"{number(short['transactions'])} transactions in {short['generate_and_train_s']:.1f} s "
        f"on the 58-day world, {number(long['transactions'])} in "
        f"{long['generate_and_train_s']:.1f} s on the {world['days']}-day one (one run each on "
        f"the shared machine: its {long['transactions'] / short['transactions'] - 1:.0%} more "
        "transactions are lost in the noise)." + delta + shared + detail])


def movielens_online(r: Results, page: str) -> str:
    """make movielens-check: served lists against the same model's offline lists, rerank on/off."""
    folder = r.root / "docs" / "evaluation"
    on = json.loads((folder / "movielens-online.json").read_text("utf-8"))
    off = json.loads((folder / "movielens-online-no-rerank.json").read_text("utf-8"))
    without = {c["variant"]: c for c in off["comparisons"]}

    def interval(x: Json, signed: bool = False) -> str:
        fmt = "+.3f" if signed else ".3f"
        return f"{x['mean']:{fmt}} ({x['low']:{fmt}} to {x['high']:{fmt}})" if signed else \
            f"{x['mean']:.3f} ({x['low']:.3f}-{x['high']:.3f})"

    rows = [[f"{c['variant']} ({c['algorithm']})", str(c["users"]),
             interval(c["recall_offline"]), interval(c["recall_online"]),
             interval(c["recall_difference"], True),
             interval(without[c["variant"]]["recall_difference"], True)]
            for c in on["comparisons"]]
    return "\n".join([
        f"{link('docs/evaluation/movielens-online.json', page)} and, rerank off, "
        f"{link('docs/evaluation/movielens-online-no-rerank.json', page)} "
        f"({utc(on['generated'])} UTC, {on['machine']['cores']} shared cores, "
        f"{on['model']['name']} v{on['model']['version']}, {on['users_asked']} held-out users, "
        f"{number(on['bootstrap_resamples'])} bootstrap resamples):", "",
        table(["variant", "users", f"recall@{on['k']} offline (95 % CI)", "online",
               "online - offline, paired", "the same, rerank off"], rows)])


# ---------------------------------------------------------------- per broker and per master


def cluster_source(found: Json, page: str) -> str:
    m, phases = found["machine"], found["phases"]
    return (f"{link('benchmarks/results/cluster_capacity.json', page)} "
            f"({utc(found['date'])} UTC, {m['cpus']} shared cores, load average "
            f"{m['load_average'][0]:.1f} at the start; Kafka {found['versions']['kafka']}, Redis "
            f"{found['versions']['redis']}; {number(found['world']['backlog'])} transactions "
            f"published at {number(phases['ingest']['tx_per_s'])} tx/s and drained by "
            f"{phases['drain']['scorers']} scorers at {number(phases['drain']['tx_per_s'])} tx/s "
            f"behind {number(found['world']['history_transactions'])} of history; "
            f"{number(phases['reads']['reads'])} reads of "
            f"{number(phases['reads']['users_with_state'])} users' state at "
            f"{number(phases['reads']['reads_per_s'])} a second)")


def cluster_needs(r: Results) -> Json:
    """Brokers and masters for the brief's scale from what one core of each carried."""
    found = r.need("cluster_capacity")
    c = found["capacity"]
    _, peak = recs_rates()
    shard_gb = r.need("recs_memory")["projection"]["shard_gb"]
    users_bytes = USERS * c["bytes_per_user"]
    brokers = max(REPLICATION, math.ceil(TX_PER_S / (c["broker_tx_per_s_per_core"]
                                                     * TARGET_UTILISATION)))
    return {
        "found": found, "c": c, "peak": peak, "shard_gb": shard_gb, "users_bytes": users_bytes,
        "brokers": brokers,
        # every transaction's log bytes are written REPLICATION times, spread over the brokers
        "broker_bytes_per_s": TX_PER_S * c["broker_log_bytes_per_tx"] * REPLICATION / brokers,
        "masters_tx": max(3, math.ceil(TX_PER_S / (c["master_tx_per_s_per_core"]
                                                   * TARGET_UTILISATION))),
        "masters_reads": max(3, math.ceil(peak / (c["master_reads_per_s_per_core"]
                                                  * TARGET_UTILISATION))),
        "masters_memory": max(3, math.ceil(users_bytes / (shard_gb * 1e9))),
    }


def busiest(cores: dict[str, float], rate: float, aim: float) -> str:
    """The master that did the most of a phase's work, and the core it would need at `aim`/s if
    its share stayed where it is (a hot key stays on one master however many there are)."""
    name = max(cores, key=lambda k: cores[k])
    return (f"the busiest master, {name}, did {round(100 * cores[name] / sum(cores.values()))} % "
            f"of it: at {number(aim)} a second it alone would need "
            f"{number(aim * cores[name] / rate, 2)} cores")


def cluster_capacity(r: Results, page: str) -> str:
    n = cluster_needs(r)
    found, c = n["found"], n["c"]
    at = f"{round(100 * TARGET_UTILISATION)} %"
    drain, reads = found["phases"]["drain"], found["phases"]["reads"]
    rows = [
        ["Kafka broker: the fraud stream (publish with acks=all, fetch, decision published)",
         f"{number(c['broker_core_us_per_tx'])} µs of broker CPU a transaction over the "
         f"{len(drain['broker_cores'])} brokers; {number(c['broker_log_bytes_per_tx'])} B a "
         "transaction written to each broker's log (replication factor 3 on 3 brokers: a copy "
         "on each)",
         f"**{number(c['broker_tx_per_s_per_core'])} tx/s**",
         f"10,000 tx/s at {at} of a core: **{n['brokers']} brokers** (3 at least, one a "
         f"zone); each writes {size(n['broker_bytes_per_s'])}/s of transactions to its log "
         "(decisions besides)"],
        ["Redis master: the fraud state (one script per entity, recorded and read)",
         f"{number(c['master_core_us_per_tx'])} µs of master CPU a transaction over the "
         f"{len(drain['master_cores'])} masters (their replicas: "
         f"{number(sum(drain['replica_cores'].values()), 2)} cores for "
         f"{number(drain['tx_per_s'])} tx/s); "
         f"{busiest(drain['master_cores'], drain['tx_per_s'], TX_PER_S)} (which keys make it "
         "the busiest is not broken down here)",
         f"**{number(c['master_tx_per_s_per_core'])} tx/s**",
         f"10,000 tx/s at {at}: **{n['masters_tx']} masters** by their mean CPU (3 at "
         "least), if the busiest one's share spreads as masters are added"],
        ["Redis master: the recommender's read of a user (one round trip, uncached)",
         f"{number(c['master_core_us_per_read'])} µs of master CPU a read; "
         f"{busiest(reads['master_cores'], reads['reads_per_s'], n['peak'])} (likely the "
         "trending head, a `{global}` key every read takes: more masters do not spread it; "
         "read it from replicas or hold it in process)",
         f"**{number(c['master_reads_per_s_per_core'])} reads/s**",
         f"{number(n['peak'])} req/s (the brief's 1 B a day, x{PEAK_FACTOR} at the peak), "
         f"every one uncached, at {at}: "
         f"**{n['masters_reads']} masters** by their mean CPU; not the busiest one's share "
         "(above)"],
        ["Redis memory: a user's recommendation state",
         f"{number(c['bytes_per_user'])} B a user on the masters (the per-catalog keys of the "
         "world included)",
         "-",
         f"200 M users = {size(n['users_bytes'])}: **{n['masters_memory']} masters** of "
         f"{number(n['shard_gb'])} GB (x{REPLICATION} memory with two replicas each)"],
    ]
    return "\n".join([
        f"Measured by `benchmarks/cluster_capacity.py` on `make run-cluster`'s topology: "
        f"{cluster_source(found, page)}. A broker and a master are each one core here (each "
        "broker's JVM is given one processor; Redis runs one thread), so what one core carried "
        "is what one of them carries:", "",
        table(["node and work", "measured", "one core carries", "the brief's scale needs"],
              rows), "",
        f"The per-core figures divide the rate by the CPU each node used, so they assume a node's "
        f"cost grows in proportion to its load (batches were {number(drain['mean_batch'])} "
        "transactions a poll); the rates themselves were bounded by the two shared cores, on "
        "which three brokers, six Redis nodes, the scorers and the benchmark ran together."])


def cluster_capacity_line(r: Results, page: str) -> str:
    """The one paragraph the fraud and recommendation pages quote from the cluster run."""
    n = cluster_needs(r)
    c = n["c"]
    at = f"{round(100 * TARGET_UTILISATION)} %"
    if "fraud" in page:
        said = (f"one Kafka broker core carried **{number(c['broker_tx_per_s_per_core'])} "
                f"tx/s** of the stream (published, fetched, decided; "
                f"{number(c['broker_log_bytes_per_tx'])} B of log a transaction on each broker) "
                f"and one Redis Cluster master core **{number(c['master_tx_per_s_per_core'])} "
                f"tx/s** of the fraud state, so 10,000 tx/s at {at} of a core takes "
                f"**{n['brokers']} brokers** and **{n['masters_tx']} masters** by CPU")
    else:
        said = (f"one Redis Cluster master core served **{number(c['master_reads_per_s_per_core'])}"
                f" reads/s** of users' state (the recommender's one round trip), so the brief's "
                f"peak of {number(n['peak'])} req/s, every one uncached, takes "
                f"**{n['masters_reads']} masters** at {at}; {number(c['bytes_per_user'])} B a "
                f"user there makes 200 M users {size(n['users_bytes'])}: "
                f"**{n['masters_memory']} masters** of {number(n['shard_gb'])} GB, so memory, "
                "not CPU, sizes the recommender's shards")
    return (f"**Per broker and per shard**, measured on the cluster topology: {said}. "
            f"From {cluster_source(n['found'], page)}; the whole table, with what it assumes: "
            f"{page_link('docs/reliability.md#capacity-per-broker-and-per-master', page)}.")


# ---------------------------------------------------------------- reliability (issue 17)

CHAOS = "benchmarks/results/chaos"


def _chaos_runs(r: Results, folder: str) -> list[Json]:
    """Every report of a side-by-side folder under benchmarks/results/chaos/, oldest first."""
    runs = [json.loads(p.read_text("utf-8"))
            for p in sorted((r.root / CHAOS / folder).glob("*.json"))]
    if not runs:
        raise FileNotFoundError(f"{CHAOS}/{folder}/ has no report")
    return sorted(runs, key=lambda run: str(run["started"]))


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{number(v)} x {k}" for k, v in counts.items())


def ingest_shedding(r: Results, page: str) -> str:
    """Fault 1 in turns with ingest's shedding off (a bound past the delivery timeout) and on."""
    runs = _chaos_runs(r, "ingest_shedding")
    rows = []
    late: dict[bool, list[int]] = {True: [], False: []}
    after_fencing: list[float] = []
    for run in runs:
        res, settings = run["results"], run["settings"]
        shedding = settings["ingest_shed_after_s"] < settings["ingest_delivery_timeout_s"]
        answers = res["late_answers"]
        late[shedding].append(answers["over_1s"])
        if shedding:
            after_fencing.append(round(res["kill_to_first_202_s"] - res["fenced_after_kill_s"], 2))
        refused = answers["refused_503_latency_ms"]
        controller = res["controller_elected_after_kill_s"] is not None
        rows.append([
            utc(run["started"])[11:], f"after {settings['ingest_shed_after_s']:g} s" if shedding
            else "off", f"{res['victim']}{' (the controller)' if controller else ''}",
            f"{run['machine']['load_average_at_start'][0]:.1f}",
            f"{res['fenced_after_kill_s']} s", f"{res['kill_to_first_202_s']} s",
            _statuses(res["statuses"]),
            number(answers["over_budget"]), number(answers["over_1s"]),
            "-" if refused is None else f"{refused['p50']} / {number(refused['max'])} ms",
            number(res["events_on_topic_not_acknowledged"]), str(res["lost"])])
    header = ["started (UTC)", "shedding", "victim", "load average", "fenced after the kill",
              "first 202 after the kill", "answers",
              f"past {runs[0]['results']['late_answers']['budget_ms']:.0f} ms",
              "past 1 s", "503 latency p50 / max", "events stored, not acknowledged", "lost"]
    first, last = runs[0], runs[-1]
    return "\n".join([
        table(header, rows), "",
        f"{len(runs)} runs of `tests/chaos/test_broker_crash.py` in turns, "
        f"{utc(first['started'])} to {utc(last['started'])[11:]} UTC, on "
        f"{first['machine']['nproc']} shared cores (other work beside them), "
        f"{first['settings']['rate_requests_per_s']:.0f} requests/s x "
        f"{first['settings']['events_per_request']} events, "
        f"{first['settings']['duration_s']:.0f} s; shedding off is `MLSD_INGEST_SHED_AFTER_S=600` "
        f"({link(CHAOS + '/ingest_shedding/', page)}). Answers past 1 s: "
        + ", ".join(str(n) for n in late[False]) + " without shedding, "
        + ", ".join(str(n) for n in late[True]) + " with it; with shedding the first 202 came "
        + " and ".join(f"{t} s" for t in after_fencing) + " after the fencing."])


def ingest_spool(r: Results, page: str) -> str:
    """Fault 1 in turns with ingest's spool on and off."""
    runs = _chaos_runs(r, "ingest_spool")
    rows = []
    late: dict[bool, list[int]] = {True: [], False: []}
    for run in runs:
        res, settings = run["results"], run["settings"]
        spool = bool(settings["ingest_spool"])
        answers = res["late_answers"]
        late[spool].append(answers["over_budget_sent_in_the_outage"])
        controller = res["controller_elected_after_kill_s"] is not None
        rows.append([
            utc(run["started"])[11:], "on" if spool else "off",
            f"{res['victim']}{' (the controller)' if controller else ''}",
            f"{run['machine']['load_average_at_start'][0]:.1f}",
            f"{res['fenced_after_kill_s']} s", _statuses(res["statuses"]),
            number(res["answers_202_spooled"]), number(res["events_spooled"]),
            number(answers["over_budget"]), number(answers["over_budget_sent_in_the_outage"]),
            number(answers["over_1s"]),
            number(res["duplicate_records_on_topic"]), str(res["lost"]),
            number(res["applied_to_online_features"])])
    header = ["started (UTC)", "spool", "victim", "load average", "fenced after the kill",
              "answers", "202s from the spool", "events spooled",
              f"past {runs[0]['results']['late_answers']['budget_ms']:.0f} ms",
              "of them sent in the outage (1 s before the kill to the restart)", "past 1 s",
              "duplicate records on the topic", "lost", "counted in the features (once each)"]
    first, last = runs[0], runs[-1]
    return "\n".join([
        table(header, rows), "",
        f"{len(runs)} runs of `tests/chaos/test_broker_crash.py` in turns "
        f"(`benchmarks/ingest_spool_runs.sh`), {utc(first['started'])} to "
        f"{utc(last['started'])[11:]} UTC, on {first['machine']['nproc']} shared cores (other "
        f"work beside them), {first['settings']['rate_requests_per_s']:.0f} requests/s x "
        f"{first['settings']['events_per_request']} events, "
        f"{first['settings']['duration_s']:.0f} s; spool off is "
        f"`MLSD_INGEST_SPOOL_ENABLED=false` (shedding after "
        f"{first['settings']['ingest_shed_after_s']:g} s), on spills after "
        f"{first['settings']['ingest_spool_after_s']:g} s "
        f"({link(CHAOS + '/ingest_spool/', page)}). Answers past the budget sent in the "
        "outage: " + ", ".join(str(n) for n in late[False]) + " without the spool, "
        + ", ".join(str(n) for n in late[True]) + " with it; the rest were sent outside it."])


def _earlier_soak(path: Path, page: str, before_what: str, with_retry: bool) -> str:
    """One earlier soak's figures, as the availability block quotes them; '' without its file."""
    if not path.exists():
        return ""
    earlier = json.loads(path.read_text("utf-8"))
    e = earlier["results"]["availability"]
    e_load = earlier["results"].get("load_average_during") or {}
    retry = (f"; {100 * e['with_ingest_retry']['all']['share']:.2f} % with ingest's retry"
             if with_retry else "")
    return (f"The soak before {before_what} "
            f"({link(CHAOS + '/previous/' + path.name, page)}, "
            f"{utc(earlier['started'])} UTC, load average {e_load.get('mean', 0):.1f} on "
            f"average): {100 * e['all']['share']:.2f} % in all, ingest "
            f"{100 * e['ingest']['share']:.2f} % "
            f"({number(e['ingest']['requests'] - e['ingest']['good'])} misses), fraud "
            f"{100 * e['fraud']['share']:.2f} %, the recommender "
            f"{100 * e['recommender']['share']:.2f} %{retry}.")

def availability_soak(r: Results, page: str) -> str:
    """The soak's headline, its share with ingest's documented retry, and the machine's load."""
    run = json.loads((r.root / CHAOS / "availability_soak.json").read_text("utf-8"))
    res = run["results"]
    raw, retry = res["availability"], res["availability"].get("with_ingest_retry")
    ingest = raw["ingest"]
    missed = ingest["requests"] - ingest["good"]
    refused = sum(v for k, v in ingest["statuses"].items() if not 200 <= int(k) < 300)
    load = res.get("load_average_during")
    lines = [
        f"**{100 * raw['all']['share']:.2f} %** of {number(raw['all']['requests'])} requests "
        f"answered 2xx inside budget by their first answer (goal {100 * res['goal']:.1f} %; "
        f"ingest {100 * ingest['share']:.2f} %, fraud {100 * raw['fraud']['share']:.2f} %, the "
        f"recommender {100 * raw['recommender']['share']:.2f} %). Of ingest's "
        f"{number(missed)} misses, {number(refused)} were refusals (503 + `Retry-After`) and "
        f"{number(missed - refused)} were 2xx past the budget."]
    if "ingest_202s_spooled" in res:  # soaks before ingest's spool lack it
        lines.append(f"Ingest answered {number(res['ingest_202s_spooled'])} posts 202 from its "
                     "spool (stored on its disk, forwarded once the brokers acknowledged).")
    if retry is not None:
        i = retry["ingest"]
        lines.append(
            f"Counting each ingest post by how its documented retry ended instead: "
            f"{100 * retry['all']['share']:.2f} % in all, ingest {100 * i['share']:.2f} % "
            f"({number(i['retried'])} posts retried, {i['never_accepted']} never accepted).")
    if load is not None:
        lines.append(
            f"Load average during the run: {load['mean']:.1f} on average, {load['min']:.1f} to "
            f"{load['max']:.1f} ({load['samples']} samples, one every {load['every_s']:.0f} s; "
            f"{run['machine']['nproc']} cores, shared with other work).")
    lines.append(f"From {link(CHAOS + '/availability_soak.json', page)} "
                 f"({utc(run['started'])} UTC, commit {run['commit'][:10]}).")
    by_fault = res.get("misses_by_fault")
    if by_fault is not None:  # soaks before the election timeout's session lack it
        kafka = [f for f in by_fault if f["what"].startswith("kill kafka")]
        others = sum(f["ingest"] for f in by_fault[:-1] if f not in kafka)
        lines.append(
            "Ingest's misses by the fault they were sent around (from a second before a kill to "
            "15 s after it): " + ", ".join(f"{f['what'].removeprefix('kill ')} at "
                                           f"{f['at_s']:.0f} s {f['ingest']}" for f in kafka)
            + f"; around the other faults {others}, outside every fault's window "
            f"{by_fault[-1]['ingest']}.")
    for name, before_what, with_retry in (
            ("availability_soak_before_spool.json", "ingest's spool", True),
            ("availability_soak_1s_session.json",
             "the controllers' shorter election timeout", True),
            ("availability_soak_3s_session.json",
             "the 1-s broker session and the producers' flat retry backoff", False)):
        line = _earlier_soak(r.root / CHAOS / "previous" / name, page, before_what, with_retry)
        if line:
            lines.append(line)
    before_path = r.root / CHAOS / "previous" / "availability_soak_before_shedding.json"
    if before_path.exists():
        before = json.loads(before_path.read_text("utf-8"))
        b = before["results"]["availability"]
        b_missed = b["ingest"]["requests"] - b["ingest"]["good"]
        b_refused = sum(v for k, v in b["ingest"]["statuses"].items() if not 200 <= int(k) < 300)
        lines.append(
            f"The soak before ingest shed load "
            f"({link(CHAOS + '/previous/availability_soak_before_shedding.json', page)}, "
            f"{utc(before['started'])} UTC, load average "
            f"{before['machine']['load_average_at_start'][0]:.1f} at its start): "
            f"{100 * b['all']['share']:.2f} % in all, ingest {100 * b['ingest']['share']:.2f} % "
            f"({number(b_refused)} refusals, {number(b_missed - b_refused)} late 2xx), fraud "
            f"{100 * b['fraud']['share']:.2f} %, the recommender "
            f"{100 * b['recommender']['share']:.2f} %.")
    kills = sum(1 for f in res["faults"] if f["what"].startswith("kill kafka"))
    allowed = round((1 - AVAILABILITY) * raw["all"]["requests"])
    lines.append(
        f"The goal allows {allowed} misses in {number(raw['all']['requests'])} requests; ingest "
        f"alone missed {number(missed)}, most in the seconds after the {kills} broker kills "
        f"(the plot). A month at {100 * AVAILABILITY:.1f} % allows "
        f"{error_budget_minutes():.1f} minutes without good answers; this soak puts {kills} "
        f"broker crashes in {run['settings']['soak_s']:.0f} s.")
    return " ".join(lines)


C1_PAIRS = "session17_2026-12-07"  # the soak in turns with the Kafka nodes on C1 only and not
CAUSES = ("fault", "start of load", "kafka gc pause", "other work on the machine",
          "cores saturated", "unexplained")


def _c1_setting(report: Json) -> str:
    """`C1 only` or `C1 + C2`, from the options the soak read off the running brokers."""
    options = {o for opts in report["settings"]["kafka_node_jvm_options"].values() for o in opts}
    levels = {o.split("=")[1] for o in options if o.startswith("-XX:TieredStopAtLevel")}
    archive = any(o.startswith("-XX:SharedArchiveFile") for o in options)
    compiler = "C1 only" if levels == {"1"} else "C1 + C2" if not levels else f"level {levels}"
    return compiler + (", archive" if archive else "")


def _cores(rows: list[Json], group: str, lo: float, hi: float) -> float:
    """A process group's mean cores over the report's seconds in [lo, hi)."""
    inside = [row for row in rows if lo <= row["t_s"] < hi]
    if group == "kafka":
        return sum(v for row in inside for k, v in row["groups"].items()
                   if k.startswith("kafka")) / len(inside)
    if group == "busy":
        return sum(row["busy"] for row in inside) / len(inside)
    return sum(row["groups"][group] for row in inside) / len(inside)


def _cpu_kind(report: Json) -> str:
    """`Xeon` or `AMD EPYC`: the machine kind a report ran on (the project's VMs are of two)."""
    model = str(report["machine"]["cpu_model"])
    return "Xeon" if "Xeon" in model else model


def soak_compiler_pairs(r: Results, page: str) -> str:
    """Every soak of the C1 pairs, in the order they ran: availability, misses by cause, the
    brokers' GC pauses and the processes' CPU, each from its own report and run.json."""
    folder = r.root / CHAOS / C1_PAIRS
    runs = []
    for run_dir in sorted(p for p in folder.iterdir() if (p / "availability_soak.json").exists()):
        report = json.loads((run_dir / "availability_soak.json").read_text("utf-8"))
        meta = json.loads((run_dir / "run.json").read_text("utf-8"))
        runs.append((run_dir.name, report, meta))
    runs.sort(key=lambda run: str(run[1]["started"]))
    rows, cpu_rows = [], []
    for name, report, meta in runs:
        res = report["results"]
        a, load, causes = res["availability"], res["load_average_during"], res["misses_by_cause"]
        missed = {c: sum(causes[c].values()) for c in CAUSES}
        kafka_kills = sum(f[s] for f in res["misses_by_fault"] if f["what"].startswith("kill kafka")
                          for s in ("ingest", "fraud", "recommender"))
        gc = res["probes"]["kafka_gc_pauses"]
        cpu = res["probed"]["cpu_per_second"]
        rows.append([
            f"{name} ({_c1_setting(report)})",
            f"{_cpu_kind(report)}, {report['commit'][:7]}, {utc(report['started'])[11:]}",
            f"{meta['loadavg_before'][0]:.1f} / {load['mean']:.2f} / {load['max']:.1f}",
            f"**{100 * a['all']['share']:.2f} %** "
            f"({number(a['all']['requests'] - a['all']['good'])})",
            " / ".join(f"{100 * a[s]['share']:.2f}" for s in ("ingest", "fraud", "recommender")),
            " / ".join(str(missed[c]) for c in CAUSES), str(kafka_kills),
            f"{sum(g['pauses'] for g in gc.values())}, "
            f"{sum(g['total_ms'] for g in gc.values()) / 1000:.1f} s, "
            f"{max(g['max_ms'] for g in gc.values()):.0f} ms"])
        first = (0.0, 10.0)
        cpu_rows.append([
            name, f"{_cores(cpu, 'busy', 0, 1e9):.2f}",
            f"{_cores(cpu, 'kafka', 0, 1e9):.2f} ({_cores(cpu, 'kafka', *first):.2f})",
            " / ".join(f"{_cores(cpu, g, 0, 1e9):.3f}"
                       for g in ("ingest", "fraud", "recommender", "stream")),
            f"{_cores(cpu, 'load client', 0, 1e9):.2f}",
            f"{_cores(cpu, 'others', 0, 1e9):.2f} ({_cores(cpu, 'others', *first):.2f})"])
    return "\n".join([
        table(["run (the brokers' JVM)", "machine, commit, started (UTC)",
               "load average: before / mean / max", "availability (misses)",
               "ingest / fraud / recommender %",
               "misses: fault / first 10 s / GC pause / other work / cores saturated / "
               "unexplained", "misses beside broker kills",
               "brokers' GC pauses: count, sum, longest"],
              rows),
        "",
        table(["run", "machine busy (cores)", "brokers (first 10 s)",
               "ingest / fraud / recommender / stream", "load client",
               "outside the run (first 10 s)"], cpu_rows),
        "",
        f"{len(runs)} runs of `make soak` (600 s, faults on), in turns of one setting and the "
        f"other on the same machine, {utc(runs[0][1]['started'])[:10]}, "
        f"{runs[0][1]['machine']['nproc']} shared cores, Kafka "
        f"{runs[0][1]['versions']['kafka']}, each under the machine's lock for heavy runs; "
        f"cores are means over the run's seconds (`cpu_per_second`). From "
        f"{link(CHAOS + '/' + C1_PAIRS + '/', page)}."])


def _scale_up_verdict(res: Json) -> str:
    """tests/chaos/test_scale_up.py's checks, in its order, on a committed report."""
    budget = res["budget_ms"]
    if res["restarts"]:
        return "failed: restarted"
    if res["workers_after"] <= 1:
        return "failed: no worker added"
    if res["first_10s_after_step"]["p99"] <= budget:
        return "failed: the step did not overload one worker"
    if res["last_20s"]["p99"] > budget:
        return "failed: p99 not back inside budget"
    return "**passed**"


def scale_up_connections(r: Results, page: str) -> str:
    """The autoscaler's load step with the services' connection recycling off and on."""
    runs = _chaos_runs(r, "scale_up_connections")
    rows = []
    for run in runs:
        res, settings = run["results"], run["settings"]
        age = settings["http_max_connection_age_s"]
        settled = res["last_20s"]
        first = res["per_worker_first_10s_after_step"]
        timeouts = res["statuses"].get("0", 0)
        rows.append([
            utc(run["started"])[11:], settings["client"].split(",")[0],
            f"{settings['low_rate_per_s']:.0f} -> {settings['high_rate_per_s']:.0f}",
            str(settings["k"]), f"{age:g} s" if age > 0 else "off",
            f"{run['machine']['load_average_at_start'][0]:.1f}",
            f"{res['workers_before']} -> {res['workers_after']}", str(len(res["windows"])),
            " / ".join(f"{w['connections_at_end']}" for w in first.values()),
            f"{res['first_10s_after_step']['p99']} ms",
            f"{settled['p50']} / {settled['p99']} ms",
            " / ".join(number(w["requests"]) for w in res["per_worker_last_20s"].values()),
            number(timeouts), _scale_up_verdict(res)])
    budget = runs[0]["results"]["budget_ms"]
    return "\n".join([
        table(["started (UTC)", "client", "requests/s", "k", "connection age", "load average",
               "workers", "controller windows", "connections per worker, 10 s after the step",
               "p99, first 10 s after the step",
               f"p50 / p99, last 20 s (p99 budget {budget:.0f} ms)",
               "requests per worker, last 20 s", "client timeouts (10 s)", "the test"], rows), "",
        f"{len(runs)} runs of `tests/chaos/test_scale_up.py` on {runs[0]['machine']['nproc']} "
        "shared cores (the load average: other work beside them); workers in the order they "
        "started; the controller logs a window every 2 s plus its scrape (up to 2 s more when "
        "the service is slow), 25 to 35 in a run it lived through; the test's verdict by its own "
        f"checks, in their order ({link(CHAOS + '/scale_up_connections/', page)})."])


def _failover_variant(settings: Json) -> str:
    """A fault-1 run's failover settings, as the table's cell."""
    return (f"{settings['broker_session_timeout_ms']} / {settings['broker_heartbeat_interval_ms']}"
            f" / {settings.get('controller_quorum_fetch_timeout_ms', 2000)} ms, "
            f"{settings.get('producer_retry_backoff_max_ms', 1000)} ms")


def _failover_misses(res: Json) -> int:
    """Answers that were not a 202 inside ingest's budget: the 503s and the late 202s (the
    soak's availability counts both against it)."""
    late_202 = res["late_answers"]["over_budget_by_status"].get("202", 0)
    refused = sum(v for k, v in res["statuses"].items() if k != "202")
    return int(late_202 + refused)


def broker_failover(r: Results, page: str) -> str:
    """Fault 1 in turns with the earlier and the shorter failover settings (broker session,
    controller fetch timeout, the producers' retry backoff)."""
    runs = _chaos_runs(r, "broker_failover")
    rows = []
    by_variant: dict[str, list[Json]] = {}
    for run in runs:
        res, settings = run["results"], run["settings"]
        variant = _failover_variant(settings)
        by_variant.setdefault(variant, []).append(res)
        answers = res["late_answers"]
        controller = res["controller_elected_after_kill_s"] is not None
        first, fenced = res["kill_to_first_202_s"], res["fenced_after_kill_s"]
        rows.append([
            utc(run["started"])[11:], variant,
            f"{res['victim']}{' (the controller)' if controller else ''}",
            f"{run['machine']['load_average_at_start'][0]:.1f}",
            "-" if fenced is None else f"{fenced} s",
            "-" if first is None else f"{first} s",
            "-" if first is None or fenced is None else f"{round(first - fenced, 2)} s",
            _statuses(res["statuses"]), number(_failover_misses(res)),
            number(answers["over_1s"]), str(res["fencings_while_down"]), str(res["lost"])])
    header = ["started (UTC)", "broker session / heartbeat / controller fetch timeout, "
              "producer retry backoff up to", "victim", "load average", "fenced after the kill",
              "first 202 after the kill", "first 202 after the fencing", "answers",
              f"misses (not a 202 inside {runs[0]['results']['late_answers']['budget_ms']:.0f} "
              "ms)", "past 1 s",
              "fencings while it was down", "lost"]
    summary = []
    for variant, results in by_variant.items():
        gaps = sorted(x["kill_to_first_202_s"] for x in results
                      if x["kill_to_first_202_s"] is not None)
        misses = [_failover_misses(x) for x in results]
        summary.append(f"{variant}: first 202 {', '.join(f'{g} s' for g in gaps)} after the "
                       f"kill, misses {', '.join(str(n) for n in misses)}")
    first, last = runs[0], runs[-1]
    return "\n".join([
        table(header, rows), "",
        f"{len(runs)} runs of `tests/chaos/test_broker_crash.py` in turns "
        f"(`benchmarks/broker_failover_runs.sh`), {utc(first['started'])} to "
        f"{utc(last['started'])[11:]} UTC, on {first['machine']['nproc']} shared cores (other "
        f"work beside them), {first['settings']['rate_requests_per_s']:.0f} requests/s x "
        f"{first['settings']['events_per_request']} events, "
        f"{first['settings']['duration_s']:.0f} s, ingest shedding after "
        f"{first['settings']['ingest_shed_after_s']:g} s "
        f"({link(CHAOS + '/broker_failover/', page)}). By setting (broker session / heartbeat / "
        "controller fetch timeout, producer retry backoff): " + "; ".join(summary) + "."])


def controller_election(r: Results, page: str) -> str:
    """Fault 1 with the active controller as the victim, in turns with Kafka's default
    controller election timeout and the template's shorter one."""
    runs = _chaos_runs(r, "controller_election")
    rows = []
    by_timeout: dict[int, list[Json]] = {}
    for run in runs:
        res, settings = run["results"], run["settings"]
        timeout = int(settings["controller_quorum_election_timeout_ms"])
        by_timeout.setdefault(timeout, []).append(res)
        elected, fenced = res["controller_elected_after_kill_s"], res["fenced_after_kill_s"]
        first = res["kill_to_first_202_s"]
        rows.append([
            utc(run["started"])[11:], f"{timeout} ms", res["victim"],
            f"{run['machine']['load_average_at_start'][0]:.1f}",
            "-" if elected is None else f"{elected} s", str(res["controller_candidacies"]),
            "-" if fenced is None else f"{fenced} s", "-" if first is None else f"{first} s",
            _statuses(res["statuses"]), number(_failover_misses(res)),
            number(res["late_answers"]["over_1s"]), str(res["fencings_while_down"]),
            str(res["lost"])])
    header = ["started (UTC)", "controller election timeout", "victim (the active controller)",
              "load average", "new controller after the kill",
              "candidacies before it (2 or more: a split vote)", "fenced after the kill",
              "first 202 after the kill", "answers",
              f"misses (not a 202 inside {runs[0]['results']['late_answers']['budget_ms']:.0f} "
              "ms)", "past 1 s", "fencings while it was down", "lost"]
    summary = []
    for timeout, results in sorted(by_timeout.items(), reverse=True):
        elected = [str(x["controller_elected_after_kill_s"]) for x in results]
        fenced = [str(x["fenced_after_kill_s"]) for x in results]
        misses = [str(_failover_misses(x)) for x in results]
        summary.append(f"{timeout} ms: new controller after {', '.join(elected)} s, fenced "
                       f"after {', '.join(fenced)} s, misses {', '.join(misses)}")
    first, last = runs[0], runs[-1]
    s = first["settings"]
    return "\n".join([
        table(header, rows), "",
        f"{len(runs)} runs of `tests/chaos/test_broker_crash.py` with "
        "`MLSD_CHAOS_BROKER_VICTIM=controller`, in turns "
        f"(`benchmarks/controller_election_runs.sh`), {utc(first['started'])} to "
        f"{utc(last['started'])[11:]} UTC, on {first['machine']['nproc']} shared cores (other "
        f"work beside them); broker session {s['broker_session_timeout_ms']} ms, heartbeat "
        f"{s['broker_heartbeat_interval_ms']} ms, controller fetch timeout "
        f"{s['controller_quorum_fetch_timeout_ms']} ms; {s['rate_requests_per_s']:.0f} "
        f"requests/s x {s['events_per_request']} events, {s['duration_s']:.0f} s, ingest "
        f"shedding after {s['ingest_shed_after_s']:g} s "
        f"({link(CHAOS + '/controller_election/', page)}). By election timeout: "
        + "; ".join(summary) + "."])


def _knee_verdict(res: Json) -> str:
    """tests/chaos/test_scale_up.py's checks (the capacity-relative step), in its order."""
    budget, share = res["budget_ms"], 0.9
    contrast = res["without_controller"]
    alone = contrast["seconds_inside_budget_last_20s"]
    if contrast["workers_after"] != 1 or contrast["last_10s"]["p99"] <= budget \
            or alone["share"] >= share:
        return "failed: one worker kept up without the controller"
    if res["restarts"]:
        return "failed: restarted"
    if res["workers_after"] <= 1:
        return "failed: no worker added"
    if res["first_10s_after_step"]["p99"] <= budget:
        return "failed: the step did not overload one worker"
    served = [w["requests"] for w in res["per_worker_last_20s"].values()]
    if not served or served[0] >= 0.75 * sum(served):
        return "failed: the load stayed on the first worker"
    recovered = res["seconds_inside_budget_last_20s"]
    idle = res["machine_idle_cores_after_step"]
    if recovered["share"] < share:
        if idle is not None and idle < 0.15:
            return "inconclusive (skipped): no idle core after the step"
        return "failed: p99 not back inside budget"
    return "**passed**"


def scale_up_knee(r: Results, page: str) -> str:
    """The load step at a multiple of one worker's capacity measured in the same run, without
    and with the controller."""
    runs = _chaos_runs(r, "scale_up_knee")
    rows = []
    for run in runs:
        res, settings = run["results"], run["settings"]
        contrast = res["without_controller"]
        capacity = contrast["capacity_of_one_worker"]
        settled = res["last_20s"]
        cores = res["worker_cores_last_20s"]
        rows.append([
            utc(run["started"])[11:], f"{run['machine']['load_average_at_start'][0]:.1f}",
            f"{settings['http_max_connection_age_s']:g} s",
            f"{capacity['requests_per_s']:g}/s on "
            f"{sum(capacity['worker_cores'].values()):.2f} cores; idle "
            f"{capacity['machine_idle_cores']}",
            f"{settings['step_factor']:g} x = {settings['high_rate_per_s']:g}/s",
            f"{number(contrast['last_10s']['p99'])} ms; "
            f"{contrast['seconds_inside_budget_last_20s']['inside_budget']} of "
            f"{contrast['seconds_inside_budget_last_20s']['seconds']}",
            f"{res['workers_before']} -> {res['workers_after']}",
            f"{res['first_step_after_load_step_s']} s",
            f"{number(res['first_10s_after_step']['p99'])} ms",
            f"{number(settled['p50'], 1)} / {number(settled['p99'], 1)} ms",
            f"{res['seconds_inside_budget_last_20s']['inside_budget']} of "
            f"{res['seconds_inside_budget_last_20s']['seconds']}",
            f"{sum(cores.values()):.2f} ({' / '.join(f'{c:.2f}' for c in cores.values())})",
            str(res["machine_idle_cores_after_step"]), _knee_verdict(res)])
    budget = runs[0]["results"]["budget_ms"]
    first = runs[0]

    def capacity_of(run: Json) -> Json:
        found: Json = run["results"]["without_controller"]["capacity_of_one_worker"]
        return found

    return "\n".join([
        table(["started (UTC)", "load average", "connection age",
               "one worker's capacity (closed loop): requests, its CPU; the machine's idle cores",
               "the step", "without the controller: p99, last 10 s; seconds inside budget, "
               "last 20 s",
               "with it: workers", "first worker added after the step",
               "p99, first 10 s after the step",
               f"p50 / p99, last 20 s (p99 budget {budget:.0f} ms)",
               "seconds inside budget, last 20 s (each second's p99)",
               "workers' cores, last 20 s", "idle cores after the step", "the test"], rows), "",
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} of `tests/chaos/test_scale_up.py` on "
        f"{first['machine']['nproc']} shared cores (the load average: other work beside them): "
        "one worker's capacity "
        f"measured by {capacity_of(first)['concurrency']} callers in a closed loop, then the "
        f"step from {first['settings']['low_rate_per_s']:g}/s "
        f"to {first['settings']['step_factor']:g} times it, {first['settings']['contrast_s']:g} s "
        f"on one worker alone, then {first['settings']['high_s']:g} s on one worker with the "
        f"controller beside it (at most {first['settings']['max_workers']} workers); the test's "
        f"verdict by its own checks, in their order ({link(CHAOS + '/scale_up_knee/', page)})."])


BLOCKS: dict[str, Callable[[Results, str], str]] = {
    "recs-freshness": recs_freshness,
    "recs-scale": recs_scale,
    "recs-cores": recs_cores,
    "recs-ten": recs_ten,
    "fraud-scale": fraud_scale,
    "fraud-cores": fraud_cores,
    "fraud-http": fraud_http,
    "fraud-stages": fraud_stages,
    "fraud-ten": fraud_ten,
    "make-load": load_table,
    "load-sweep": sweep_table,
    "readme-status": readme_status,
    "fraud-stream-capacity": fraud_stream_capacity,
    "broker-start": broker_start,
    "fraud-workers": fraud_workers,
    "fraud-workers-coalesced": fraud_workers_coalesced,
    "fraud-aims": fraud_aims,
    "fraud-features-latency": fraud_features_latency,
    "fraud-stream-by-cores": stream_by_cores,
    "kafka-clients": kafka_clients,
    "recs-targets": recs_targets,
    "records-writer": records_writer,
    "lake-sink": lake_sink,
    "stream-io": stream_io,
    "decision-event-cost": decision_event_cost,
    "fraud-state-calls": fraud_state_calls,
    "fraud-policy": fraud_policy,
    "recs-feature-logging": recs_feature_logging,
    "recs-shadow": recs_shadow,
    "recs-after-promotion": recs_after_promotion,
    "fraud-stream-world": fraud_stream_world,
    "movielens-online": movielens_online,
    "cluster-capacity": cluster_capacity,
    "cluster-capacity-line": cluster_capacity_line,
    "fraud-reference-burn-in": fraud_reference_burn_in,
    "fraud-lifecycle-stack": fraud_lifecycle_stack,
    "fraud-retrain-dev-stack": fraud_retrain_dev_stack,
    "ingest-shedding": ingest_shedding,
    "ingest-spool": ingest_spool,
    "availability-soak": availability_soak,
    "soak-compiler-pairs": soak_compiler_pairs,
    "scale-up-connections": scale_up_connections,
    "scale-up-knee": scale_up_knee,
    "broker-failover": broker_failover,
    "controller-election": controller_election,
}

# The body runs from the line after `begin` to the line before `end`, its last newline included
# (empty in a page not yet rendered).
BLOCK = re.compile(r"(<!-- numbers:(?P<name>[a-z-]+) begin \(benchmarks/doc_numbers\.py\) -->\n)"
                   r"(?P<body>.*?)"
                   r"(<!-- numbers:(?P=name) end -->)", re.DOTALL)


def pages(root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for entry in PAGES:
        path = root / entry
        found += sorted(path.rglob("*.md")) if path.is_dir() else [path]
    return found


def render(text: str, page: str, results: Results) -> str:
    """`text` with every block between its markers rendered anew."""
    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"{page}: unknown numbers block {name!r}")
        return f"{match[1]}{BLOCKS[name](results, page)}\n{match[4]}"
    return BLOCK.sub(fill, text)


def stale(root: Path = ROOT, results: Results | None = None) -> list[str]:
    """The `page: block` pairs whose text differs from what the results render."""
    results = results or Results(root)
    out = []
    for path in pages(root):
        text = path.read_text("utf-8")
        page = str(path.relative_to(root))
        for match in BLOCK.finditer(text):
            if match["body"] != BLOCKS[match["name"]](results, page) + "\n":
                out.append(f"{page}: {match['name']}")
    return out


def write(root: Path = ROOT, results: Results | None = None) -> list[str]:
    results = results or Results(root)
    changed = []
    for path in pages(root):
        text = path.read_text("utf-8")
        new = render(text, str(path.relative_to(root)), results)
        if new != text:
            path.write_text(new, "utf-8")
            changed.append(str(path.relative_to(root)))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale()
        for line in differing:
            print(f"stale: {line}")
        return 1 if differing else 0
    for page in write():
        print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
