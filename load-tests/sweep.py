"""The load sweep: each design's p99 against offered rate, open loop, stepped up until the budget
breaks, beside the bare-endpoint floor (floor.py) driven with the same traffic at the same steps.

    .venv/bin/python load-tests/sweep.py recs fraud                  # the services of `make run`
    .venv/bin/python load-tests/sweep.py recs --floor-only --rates 100,500,1000 --step-duration 5s

For each design, at each offered rate (ascending), one open-loop run (openloop.py's schedule and
driver, the design's traffic) against the service and one against the floor, in alternating
order, so noise on the machine hits both alike. The floor is started here, on a free port, and
stopped at the end. Each step is judged by the design's gate (slo.py: its p99 budget, at most
0.1 % failed); a target stops after two steps over budget in a row, or after one step with its
p99 over twice the budget, so an overloaded service is not hammered for long. The knee is the
highest offered rate whose step was within budget.

With --out DIR (default reports/load/sweep) it writes sweep.json (every step, the machine, the
versions, the commit, the settings), sweep.csv (a row per step), p99_vs_rate.png and summary.md
(also printed). A design whose service does not answer is skipped, said so, and the process
exits 1 at the end; an over-budget service is a measurement, not a failure (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import importlib.metadata
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openloop  # siblings: load-tests/ is on sys.path when this runs as a script
import slo
import viewers
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from services.common.loopback import free_port
from services.common.processes import stop_process

logger = logging.getLogger("sweep")

# Past the framework's floor (~2,500 req/s on a quiet 2-core machine, issue 14), finer where the
# services' knees are expected (a few hundred req/s): 13 steps, about 5 minutes per design.
DEFAULT_RATES = (100, 200, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000)
SERVICE, FLOOR = "service", "floor"
BREAKS_TO_STOP = 2          # steps over budget in a row that end a target's sweep
FAR_OVER_BUDGET = 2.0       # one step with p99 over this multiple of the budget ends it at once
FLOOR_START_TIMEOUT_S = 30.0
INTERRUPTED = "interrupted (Ctrl-C)"
VERSIONED = ("aiohttp", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic",
             "matplotlib")


# --- A step, the stop rule, the knee --------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One open-loop run at one offered rate against one target (the service or the floor)."""

    design: str
    target: str            # SERVICE or FLOOR
    offered_rps: float
    achieved_rps: float    # answers that passed, per second from the first due to the last answer
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float      # how late the driver sent, p99: over openloop.LAG_WARNING_MS ...
    driver_kept_up: bool   # ... and the step measures the load generator too
    within_budget: bool    # the design's gate: p99 budget and failure ratio
    problems: str          # why not, "; "-joined
    seconds: float


def measure(design: str, target: str, rate: float, run: openloop.Run, gate: slo.Slo,
            endpoint: str, arrival: str, answer_problems: Sequence[str] = ()) -> Step:
    """A run as a step, judged by the gate as openloop.py judges a run."""
    failures = sum(not r.ok for r in run.results)
    stats = slo.latency_stats(endpoint, (r.latency_ms for r in run.results), failures,
                              run.seconds)
    (verdict,) = slo.evaluate(gate, [stats] if run.results else [],
                              {endpoint: answer_problems})
    lags = sorted(r.lag_ms for r in run.results)
    _, kept_up = openloop.lag_line(run, rate, arrival)
    ok = stats.requests - failures
    return Step(design, target, rate, round(ok / run.seconds, 1) if run.seconds > 0 else 0.0,
                stats.requests, failures, stats.p50_ms, stats.p95_ms, stats.p99_ms,
                round(stats.max_ms, 1), round(slo.percentile(lags, 0.99), 1), kept_up,
                verdict.passed, "; ".join(verdict.problems), round(run.seconds, 2))


def stop_reason(steps: Sequence[Step], budget_ms: float) -> str | None:
    """Why a target's sweep ends after its steps so far (in order), or None to go on."""
    if not steps or steps[-1].within_budget:
        return None
    last = steps[-1]
    if last.p99_ms > FAR_OVER_BUDGET * budget_ms:
        return (f"p99 {last.p99_ms:g} ms at {last.offered_rps:g} req/s, over "
                f"{FAR_OVER_BUDGET:g}x the {budget_ms:g} ms budget")
    broken = steps[-BREAKS_TO_STOP:]
    if len(broken) == BREAKS_TO_STOP and not any(s.within_budget for s in broken):
        rates = " and ".join(f"{s.offered_rps:g}" for s in broken)
        return f"over budget at {rates} req/s in a row ({last.problems})"
    return None


def knee(steps: Sequence[Step]) -> float | None:
    """The highest offered rate whose step was within budget; None when none was."""
    return max((s.offered_rps for s in steps if s.within_budget), default=None)


# --- A design's sweep ------------------------------------------------------------------------


@dataclass
class Target:
    """The service or the floor for one design: where it is, its traffic, its steps so far."""

    kind: str
    host: str
    calls: Iterator[openloop.Call]
    tally: viewers.Tally
    steps: list[Step] = field(default_factory=list)
    stopped: str | None = None   # why it stopped, or None while it goes on / ran out of rates
    skipped: str | None = None   # why it never started


@dataclass(frozen=True)
class Settings:
    rates: tuple[float, ...]
    step_s: float
    pause_s: float
    arrival: str
    seed: int
    timeout_s: float
    max_connections: int
    floor_platform: bool = False   # the floor behind create_service_app's middleware


async def probe(host: str, timeout_s: float = 3.0) -> str | None:
    """What keeps host from answering HTTP, or None: any answer, a 404 too, means it serves."""
    try:
        async with (aiohttp.ClientSession(host) as session,
                    asyncio.timeout(timeout_s),
                    session.get("/healthz") as response):
            await response.read()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except aiohttp.ClientError as failure:
        return f"{type(failure).__name__}: {failure}"
    return None


async def run_step(target: Target, rate: float, due: Sequence[float], name: str,
                   settings: Settings) -> openloop.Run:
    connector = aiohttp.TCPConnector(limit=settings.max_connections)
    async with aiohttp.ClientSession(target.host, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        return await openloop.drive(session, name, target.calls, due, settings.timeout_s)


def sweep_design(name: str, design: openloop.Design, targets: Sequence[Target],
                 settings: Settings) -> None:
    """Step every target of one design through the rates, alternating which goes first, until
    each has stopped or the rates run out; each step logged as it ends."""
    gate = slo.Slo({design.endpoint: design.p99_budget_ms})
    for index, rate in enumerate(settings.rates):
        live = [t for t in targets if t.stopped is None and t.skipped is None]
        if not live:
            return
        # the same arrival times for every target at this rate
        due = openloop.schedule(rate, settings.step_s, settings.arrival,
                                random.Random(settings.seed + index))
        for target in live if index % 2 == 0 else live[::-1]:
            target.tally.clear()
            run = asyncio.run(run_step(target, rate, due, design.endpoint, settings))
            step = measure(name, target.kind, rate, run, gate, design.endpoint,
                           settings.arrival, target.tally.problems())
            target.steps.append(step)
            logger.info(progress_line(step))
            target.stopped = stop_reason(target.steps, design.p99_budget_ms)
            if target.stopped:
                logger.info("%s %s: stopped, %s", name, target.kind, target.stopped)
            time.sleep(settings.pause_s)  # let a queue left by an overloaded step drain


def progress_line(step: Step) -> str:
    """e.g. recs  300 req/s  service  p50 3.1  p95 9.0  p99 25.3  max 80.2 ms | 299.8 req/s,
    0 of 3,012 failed, driver lag p99 1.2 ms | within budget"""
    verdict = "within budget" if step.within_budget else f"OVER: {step.problems}"
    lag = "" if step.driver_kept_up else " (driver fell behind: measures the generator too)"
    return (f"{step.design} {step.offered_rps:6g} req/s  {step.target:7}  p50 {step.p50_ms:g}  "
            f"p95 {step.p95_ms:g}  p99 {step.p99_ms:g}  max {step.max_ms:g} ms | "
            f"{step.achieved_rps:g} req/s, {step.failures:,} of {step.requests:,} failed, "
            f"driver lag p99 {step.lag_p99_ms:g} ms{lag} | {verdict}")


# --- The floor process -----------------------------------------------------------------------


class FloorDidNotStart(Exception):
    """floor.py did not answer in time, or exited."""


@contextlib.contextmanager
def floor_server(platform_middleware: bool = False,
                 timeout_s: float = FLOOR_START_TIMEOUT_S) -> Iterator[str]:
    """floor.py in its own process on a free port, answering; its URL. Stopped on the way out."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("floor.py")), "--port", str(port)]
    process = subprocess.Popen([*command, "--platform"] if platform_middleware else command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while (problem := asyncio.run(probe(url, 1.0))) is not None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise FloorDidNotStart(f"the floor server did not start on {url}: {problem}")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process, 5)


# --- The record: JSON, CSV, plot, summary ----------------------------------------------------


def floor_kind(platform_middleware: bool) -> str:
    if platform_middleware:
        return ("load-tests/floor.py --platform: FastAPI behind the platform's middleware and "
                "routes (create_service_app) on one uvicorn process, fixed bodies, no request "
                "parsing")
    return ("load-tests/floor.py: plain FastAPI on one uvicorn process, fixed bodies, no "
            "platform middleware, no request parsing")


def machine() -> dict[str, Any]:
    """What runs the sweep: cores, CPU model, memory, and its load average now (the sweep reads
    it as it starts: other work on the machine shows there)."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    meminfo = _read("/proc/meminfo")
    kib = next((int(line.split()[1]) for line in meminfo.splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "cpu_model": model, "memory_gib": round(kib / 2**20, 1),
            "platform": platform.platform(), "load_average_at_start": os.getloadavg()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def target_record(target: Target, rates: Sequence[float]) -> dict[str, Any]:
    found = knee(target.steps)
    ran_out = target.stopped is None and target.skipped is None and bool(target.steps)
    return {
        "host": target.host if target.kind == SERVICE else "floor.py on a free port",
        "skipped": target.skipped,
        "stopped": target.stopped or ("ran out of rates" if ran_out else None),
        "knee_rps": found,
        # the rates ran out inside the budget: the knee is at least the highest rate
        "knee_is_lower_bound": ran_out and found == max(rates) and target.steps[-1].within_budget,
        "steps": [asdict(s) for s in target.steps],
    }


def record(designs: Mapping[str, tuple[openloop.Design, Sequence[Target]]], settings: Settings,
           started: datetime, at_start: Mapping[str, Any], argv: Sequence[str]) -> dict[str, Any]:
    """Everything the sweep found and how: at_start is machine() as the sweep began."""
    return {
        "generated": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": " ".join(["load-tests/sweep.py", *argv]),
        "machine": {**at_start, "load_average_at_end": os.getloadavg()},
        "versions": versions(),
        "git": git_commit(),
        "settings": {
            "rates_rps": list(settings.rates), "step_duration_s": settings.step_s,
            "pause_s": settings.pause_s, "arrival": settings.arrival, "seed": settings.seed,
            "timeout_s": settings.timeout_s, "max_connections": settings.max_connections,
            "max_failure_ratio": slo.MAX_FAILURE_RATIO,
            "stop_rule": f"{BREAKS_TO_STOP} steps over budget in a row, or one with p99 over "
                         f"{FAR_OVER_BUDGET:g}x the budget",
            "floor": floor_kind(settings.floor_platform),
        },
        "designs": {
            name: {"endpoint": design.endpoint, "p99_budget_ms": design.p99_budget_ms,
                   **{t.kind: target_record(t, settings.rates) for t in targets}}
            for name, (design, targets) in designs.items()
        },
    }


def write_csv(result: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(f.name for f in fields(Step))
        for entry in result["designs"].values():
            for kind in (SERVICE, FLOOR):
                for step in entry.get(kind, {}).get("steps", []):
                    writer.writerow(step[f.name] for f in fields(Step))


def plot(result: Mapping[str, Any], path: Path) -> None:
    """p99 against offered rate per design, the floor beside it, the budget as a red line; a
    cross marks a step over budget, the dotted line the knee. Log-log: knees and floors apart."""
    designs = result["designs"]
    figure = Figure(figsize=(6.5 * max(1, len(designs)), 4.8), layout="constrained")
    axes = figure.subplots(1, max(1, len(designs)), squeeze=False, sharey=True)[0]
    for ax, (name, entry) in zip(axes, designs.items(), strict=False):
        for kind, style in ((SERVICE, {"color": "tab:blue", "marker": "o"}),
                            (FLOOR, {"color": "tab:gray", "linestyle": "--", "marker": "."})):
            steps = entry.get(kind, {}).get("steps", [])
            if not steps:
                continue
            knee_rps = entry[kind]["knee_rps"]
            ax.plot([s["offered_rps"] for s in steps], [max(s["p99_ms"], 0.1) for s in steps],
                    label=f"{name} {kind} (knee {knee_rps or 'none'} req/s)", **style)
            over = [s for s in steps if not s["within_budget"]]
            ax.scatter([s["offered_rps"] for s in over], [max(s["p99_ms"], 0.1) for s in over],
                       marker="x", color="tab:red", zorder=3)
            if knee_rps:
                ax.axvline(knee_rps, color=str(style["color"]), linestyle=":", linewidth=1)
        ax.axhline(entry["p99_budget_ms"], color="tab:red", linewidth=1,
                   label=f"budget {entry['p99_budget_ms']:g} ms")
        ax.set(xscale="log", yscale="log", xlabel="offered rate (req/s, open loop)",
               ylabel="p99 latency (ms, from due time)", title=f"{name}: {entry['endpoint']}")
        rates = result["settings"]["rates_rps"]
        ax.set_xticks(rates, [f"{r:g}" for r in rates], rotation=60, fontsize="small")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(f"load sweep, {result['generated']}, {result['machine']['nproc']} cores, "
                    f"{result['settings']['step_duration_s']:g} s per step")
    figure.savefig(path, dpi=110)


def summary(result: Mapping[str, Any]) -> str:
    m, s, v = result["machine"], result["settings"], result["versions"]
    lines = [
        "# Load sweep", "",
        f"{result['generated']}, commit {result['git']['commit']}"
        f"{' (uncommitted changes)' if result['git']['dirty'] else ''}; "
        f"{m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, load average (1, 5, 15 "
        f"min) {_loads(m['load_average_at_start'])} at start, {_loads(m['load_average_at_end'])} "
        f"at end; Python {v['python']}, "
        f"aiohttp {v['aiohttp']}, fastapi {v['fastapi']}, uvicorn {v['uvicorn']}.", "",
        f"Open loop ({s['arrival']} arrivals), {s['step_duration_s']:g} s per step, latency from "
        f"when each request was due. A target stops after {s['stop_rule']}. Floor: "
        f"{s['floor']}.", "",
        f"Command: `{result['command']}`", "",
    ]
    for name, entry in result["designs"].items():
        lines += [f"## {name}: {entry['endpoint']} (p99 budget {entry['p99_budget_ms']:g} ms)", ""]
        lines += [knee_line(name, kind, entry[kind]) for kind in (SERVICE, FLOOR) if kind in entry]
        lines += ["", *step_table(entry), ""]
    return "\n".join(lines)


def _loads(averages: Sequence[float]) -> str:
    return "/".join(f"{x:.1f}" for x in averages)


def knee_line(name: str, kind: str, target: Mapping[str, Any]) -> str:
    """e.g. recs service: knee 300 req/s (stopped: over budget at 400 and 500 req/s in a row)"""
    if target["skipped"]:
        return f"- {name} {kind}: SKIPPED, {target['skipped']}"
    if target["knee_rps"] is None:
        return (f"- {name} {kind}: no knee, over budget from the lowest step "
                f"({target['stopped']})")
    at_least = "at least " if target["knee_is_lower_bound"] else ""
    return (f"- {name} {kind}: knee {at_least}{target['knee_rps']:g} req/s "
            f"({target['stopped']})")


def step_table(entry: Mapping[str, Any]) -> list[str]:
    by_rate: dict[float, dict[str, Mapping[str, Any]]] = {}
    for kind in (SERVICE, FLOOR):
        for step in entry.get(kind, {}).get("steps", []):
            by_rate.setdefault(step["offered_rps"], {})[kind] = step
    rows = ["| offered req/s | service p50 / p95 / p99 ms | achieved req/s | failed | floor "
            "p50 / p95 / p99 ms | floor achieved | floor failed |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in sorted(by_rate):
        cells = [f"{rate:g}"]
        for kind in (SERVICE, FLOOR):
            step = by_rate[rate].get(kind)
            cells += _cells(step) if step else ["", "", ""]
        rows.append(f"| {' | '.join(cells)} |")
    return rows


def _cells(step: Mapping[str, Any]) -> list[str]:
    mark = "" if step["within_budget"] else " **over**"
    lag = "" if step["driver_kept_up"] else f" (driver lag p99 {step['lag_p99_ms']:g} ms)"
    return [f"{step['p50_ms']:g} / {step['p95_ms']:g} / {step['p99_ms']:g}{mark}{lag}",
            f"{step['achieved_rps']:g}", f"{step['failures']:,} of {step['requests']:,}"]


def write(result: Mapping[str, Any], out: Path) -> str:
    """Every file of the record into out; the summary's text."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    write_csv(result, out / "sweep.csv")
    plot(result, out / "p99_vs_rate.png")
    text = summary(result)
    (out / "summary.md").write_text(text + "\n")
    return text


# --- The command -----------------------------------------------------------------------------


def parse_rates(text: str) -> tuple[float, ...]:
    """100,200,300: ascending positive req/s."""
    try:
        rates = tuple(float(part) for part in text.replace(" ", ",").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a list of rates: {text!r} (e.g. 100,200,400)") from None
    if not rates or any(r <= 0 for r in rates) or list(rates) != sorted(set(rates)):
        raise argparse.ArgumentTypeError(f"rates must be positive and ascending, got {text!r}")
    return rates


def parse_pairs(values: Sequence[str], what: str) -> dict[str, str]:
    """DESIGN=VALUE options (--host fraud=http://..., --world recs=DIR)."""
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or name not in openloop.DESIGNS or not rest:
            raise SystemExit(f"--{what} takes DESIGN=VALUE with DESIGN one of "
                             f"{', '.join(sorted(openloop.DESIGNS))}, got {value!r}")
        pairs[name] = rest
    return pairs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("designs", nargs="*", metavar="DESIGN",
                        help="recs, fraud (default: both, recs first: an overloaded fraud run "
                             "leaves a backlog)")
    parser.add_argument("--floor-only", action="store_true",
                        help="sweep the floor alone, with each design's traffic (no stack)")
    parser.add_argument("--floor-platform", action="store_true",
                        help="put the platform's middleware (request metrics) in the floor")
    parser.add_argument("--rates", type=parse_rates, default=DEFAULT_RATES,
                        help="offered rates in req/s, ascending (default: "
                             f"{','.join(map(str, DEFAULT_RATES))})")
    parser.add_argument("--step-duration", default="10s", help="each step's length: 10s, 1m")
    parser.add_argument("--pause", default="1s", help="between steps, for queues to drain")
    parser.add_argument("--arrival", choices=(openloop.POISSON, openloop.CONSTANT),
                        default=openloop.POISSON)
    parser.add_argument("--seed", type=int, default=1, help="for the schedules and the traffic")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds from sending to giving up on an answer (a failure)")
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--host", action="append", default=[], metavar="DESIGN=URL",
                        help="a service elsewhere (default: its port on 127.0.0.1)")
    parser.add_argument("--world", action="append", default=[], metavar="DESIGN=DIR",
                        help="a design's synthetic world (default: under .state/worlds)")
    parser.add_argument("--out", type=Path, default=Path("reports/load/sweep"))
    args = parser.parse_args(argv)
    unknown = [d for d in args.designs if d not in openloop.DESIGNS]
    if unknown:
        parser.error(f"unknown design(s) {', '.join(unknown)}: choose from "
                     f"{', '.join(sorted(openloop.DESIGNS))}")
    return args


def build_targets(design: openloop.Design, floor_url: str, floor_only: bool, seed: int,
                  unreachable: str | None = None) -> list[Target]:
    """The service (unless floor_only) and the floor, each with its own traffic drawn from the
    same seed: both get the same requests in the same order. A service that does not answer
    (unreachable says why) skips both, and no world is loaded."""
    kinds = [(FLOOR, floor_url)] if floor_only else [(SERVICE, design.host), (FLOOR, floor_url)]
    targets = []
    for kind, host in kinds:
        tally = viewers.Tally()
        if unreachable is None:
            targets.append(Target(kind, host, design.calls(design.world, random.Random(seed),
                                                           tally), tally))
            continue
        skipped = (f"the service at {host} does not answer ({unreachable}); is the stack "
                   "running (`make run`)?") if kind == SERVICE else "its service was skipped"
        targets.append(Target(kind, host, iter(()), tally, skipped=skipped))
    return targets


Swept = dict[str, tuple[openloop.Design, Sequence[Target]]]


def sweep_all(designs: Mapping[str, openloop.Design], floor_only: bool,
              settings: Settings) -> Swept:
    """Start the floor, sweep each design in turn (one whose service does not answer is skipped
    and said so), stop the floor. Ctrl-C ends the sweep but keeps what was measured."""
    swept: Swept = {}
    with floor_server(settings.floor_platform) as floor_url:
        logger.info("floor: %s (%s)", floor_url, floor_kind(settings.floor_platform))
        try:
            for name, design in designs.items():
                problem = None if floor_only else asyncio.run(probe(design.host))
                targets = build_targets(design, floor_url, floor_only, settings.seed, problem)
                swept[name] = (design, targets)
                if problem:
                    logger.error("%s: SKIPPED, %s", name, targets[0].skipped)
                    continue
                gc.freeze()  # the worlds are only read: full collections need not rescan them
                logger.info("%s: %s, p99 budget %g ms, %s", name, design.endpoint,
                            design.p99_budget_ms,
                            ", ".join(f"{t.kind} {t.host}" for t in targets))
                sweep_design(name, design, targets, settings)
        except KeyboardInterrupt:
            logger.warning("interrupted: writing what was measured")
            for _, swept_targets in swept.values():
                for target in swept_targets:
                    if target.stopped is None and target.skipped is None:
                        target.stopped = INTERRUPTED
    return swept


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s/%(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    hosts, worlds = parse_pairs(args.host, "host"), parse_pairs(args.world, "world")
    settings = Settings(args.rates, openloop.parse_duration(args.step_duration),
                        openloop.parse_duration(args.pause), args.arrival, args.seed,
                        args.timeout, args.max_connections, args.floor_platform)
    started, at_start = datetime.now(UTC), machine()
    chosen = {name: replace(openloop.DESIGNS[name], host=hosts.get(name, d.host),
                            world=Path(worlds[name]) if name in worlds else d.world)
              for name in dict.fromkeys(args.designs or ["recs", "fraud"])
              for d in [openloop.DESIGNS[name]]}
    try:
        swept = sweep_all(chosen, args.floor_only, settings)
    except FloorDidNotStart as failure:
        logger.error("load sweep FAILED: %s", failure)
        return 1
    result = record(swept, settings, started, at_start, argv)
    print(write(result, args.out))
    for name, entry in result["designs"].items():
        for kind in (SERVICE, FLOOR):
            if kind in entry:
                logger.info("KNEE %s", knee_line(name, kind, entry[kind]).removeprefix("- "))
    logger.info("written: %s/{sweep.json,sweep.csv,p99_vs_rate.png,summary.md}", args.out)
    skipped = [n for n, (_, ts) in swept.items() if any(t.skipped for t in ts)]
    if skipped:
        logger.error("load sweep INCOMPLETE: %s skipped (service not reachable)",
                     ", ".join(skipped))
        return 1
    if any(t.stopped == INTERRUPTED for _, ts in swept.values() for t in ts):
        logger.error("load sweep INCOMPLETE: interrupted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
