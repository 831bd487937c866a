"""Open-loop load: requests leave on a fixed schedule whatever the service does, and each one's
latency counts from when it was due.

Locust is closed loop: a user waits for its answer before sending its next request, so while
the service stalls the requests that would have gone out are never sent and never measured
(coordinated omission); a 1 s stall shows up as a few slow requests instead of hundreds. Here
the arrivals are fixed in advance (a Poisson process, or evenly spaced, at --rps), and a request
that queues behind a slow one, on either side, carries the wait in its latency.

    .venv/bin/python load-tests/openloop.py fraud --rps 500 --duration 30s
    .venv/bin/python load-tests/openloop.py recs --rps 300 --duration 1m --arrival constant

Traffic comes from the locustfiles' generators (transactions.py, viewers.py) and the verdict from
their gate (slo.py: same budgets, same rules, --slo-p99-ms or LOCUST_SLO_P99_MS to override).
With --out PREFIX (default reports/load/<design>/openloop) it writes

    PREFIX_requests.csv     a row per request: when it was due (s from the start), latency from
                            then, how late it went out (the driver's own lag), status, error
    PREFIX_slo.csv          what the gate judged
    PREFIX_served_from.csv  recs: answers by served_from

and exits 1 when the gate broke. The driver's lag is logged at the end: when its p99 is more than
a few ms, the numbers measure the generator, not the service.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import gc
import json
import logging
import os
import random
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path
from typing import Any

import aiohttp
import slo  # siblings: load-tests/ is on sys.path when this runs as a script
import transactions
import viewers

logger = logging.getLogger("openloop")

POISSON, CONSTANT = "poisson", "constant"
START_LEAD_S = 0.2      # the first request is due this long after set-up ends, not during it
LAG_WARNING_MS = 5.0    # a p99 send lag above this: the driver, not only the service, is slow


def schedule(rate: float, seconds: float, arrival: str, rng: random.Random) -> list[float]:
    """When each request is due, in seconds from the start: evenly spaced at rate (CONSTANT),
    or the arrivals of many independent clients, exponential gaps of mean 1 / rate (POISSON)."""
    if rate <= 0 or seconds <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate} req/s for {seconds} s")
    if arrival == CONSTANT:
        return [i / rate for i in range(round(rate * seconds))]
    if arrival != POISSON:
        raise ValueError(f"arrival must be {POISSON} or {CONSTANT}, got {arrival!r}")
    due: list[float] = []
    at = rng.expovariate(rate)
    while at < seconds:
        due.append(at)
        at += rng.expovariate(rate)
    return due


def parse_duration(text: str) -> float:
    """Seconds in a Locust-style duration: 30s, 2m, 1h30m, or a plain number of seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 2m, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# --- A request and its result ----------------------------------------------------------------


Check = Callable[[int, bytes], str | None]  # (status, body): what is wrong with an answer


def answered_2xx(status: int, _: bytes) -> str | None:
    """Locust's rule: a non-2xx answer is a failure."""
    return None if 200 <= status < 300 else f"HTTP {status}"


@dataclass(frozen=True)
class Call:
    """One request to send; check says what is wrong with its answer, or None."""

    method: str
    path: str
    json: Any = None
    check: Check = answered_2xx
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Result:
    name: str
    due_s: float        # when it was due, in seconds from the start of the schedule
    latency_ms: float   # from due to the answer (or to giving up)
    lag_ms: float       # from due to the send starting: the driver's own lateness
    status: int         # 0: no answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class Run:
    results: list[Result]  # in the order they were due
    seconds: float         # from the start of the schedule to the last answer
    peak_in_flight: int    # the most requests waiting for an answer at once


async def drive(session: aiohttp.ClientSession, name: str, calls: Iterator[Call],
                due: Sequence[float], timeout_s: float) -> Run:
    """Send calls at their due times (seconds from now + START_LEAD_S) without waiting for
    answers; each result's latency counts from its due time."""
    loop = asyncio.get_running_loop()
    results: list[Result] = []
    in_flight: set[asyncio.Task[None]] = set()
    peak = 0
    start = loop.time() + START_LEAD_S

    async def send(call: Call, offset: float) -> None:
        due_at = start + offset
        lag = loop.time() - due_at
        try:
            async with (asyncio.timeout(timeout_s),
                        session.request(call.method, call.path, json=call.json,
                                        headers=call.headers) as response):
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as failure:
            answered = loop.time()
            status, error = 0, _describe(failure, timeout_s)
        else:
            answered = loop.time()  # before the check, as Locust times it
            error = call.check(status, body) or ""
        results.append(Result(name, offset, (answered - due_at) * 1000, lag * 1000, status, error))

    for offset in due:
        call = next(calls)  # built before it is due: building it is not part of the lag
        if (wait := start + offset - loop.time()) > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(send(call, offset))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        peak = max(peak, len(in_flight))
    await asyncio.gather(*list(in_flight))
    results.sort(key=lambda r: r.due_s)
    last = max((r.due_s + r.latency_ms / 1000 for r in results), default=0.0)
    return Run(results, last, peak)


def _describe(failure: Exception, timeout_s: float) -> str:
    if isinstance(failure, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return f"{type(failure).__name__} {failure}".strip()


# --- The two designs -------------------------------------------------------------------------


def fraud_calls(world_dir: Path, rng: random.Random, _: viewers.Tally) -> Iterator[Call]:
    traffic = transactions.TrafficGenerator(transactions.load_world(world_dir), rng)
    return (Call("POST", "/v1/score", request.body) for request in traffic)


def recs_calls(world_dir: Path, rng: random.Random, tally: viewers.Tally,
               mix: str = viewers.DEFAULT_MIX, uncached: bool = False) -> Iterator[Call]:
    """GETs whose answers are checked against the contract and counted in tally; uncached:
    each asks for a list computed now, and an answer served any other way is a failure."""
    population = viewers.Population(viewers.load_users(world_dir), viewers.MIXES[mix])

    def checked(request: viewers.RecsRequest) -> Check:
        def check(status: int, body: bytes) -> str | None:
            if status != 200:
                return f"HTTP {status}"
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            problem = tally.record(answer, request)
            if problem is not None:
                return f"malformed answer: {problem}"
            return viewers.uncached_problem(answer) if uncached else None
        return check

    traffic = viewers.TrafficGenerator(population, rng)
    headers = viewers.UNCACHED if uncached else None
    return (Call("GET", request.path, check=checked(request), headers=headers)
            for request in traffic)


@dataclass(frozen=True)
class Design:
    endpoint: str
    p99_budget_ms: float
    host: str
    rps: float
    world: Path
    calls: Callable[[Path, random.Random, viewers.Tally], Iterator[Call]]
    tallies_answers: bool = False


DESIGNS = {
    "fraud": Design(transactions.ENDPOINT, transactions.P99_BUDGET_MS, "http://127.0.0.1:8040",
                    transactions.DEFAULT_TARGET_RPS, transactions.DEFAULT_WORLD, fraud_calls),
    "recs": Design(viewers.ENDPOINT, viewers.P99_BUDGET_MS, "http://127.0.0.1:8030",
                   viewers.DEFAULT_TARGET_RPS, viewers.DEFAULT_WORLD, recs_calls,
                   tallies_answers=True),
    # The same traffic, every answer computed: the service's cost per request, cache aside.
    "recs-uncached": Design(viewers.ENDPOINT, viewers.P99_BUDGET_MS, "http://127.0.0.1:8030",
                            viewers.DEFAULT_TARGET_RPS, viewers.DEFAULT_WORLD,
                            functools.partial(recs_calls, uncached=True),
                            tallies_answers=True),
}


# --- The run, written down and judged ---------------------------------------------------------


def write_results(results: Sequence[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(f.name for f in fields(Result))
        for r in results:
            writer.writerow(round(v, 3) if isinstance(v, float) else v for v in astuple(r))


def read_results(path: Path) -> list[Result]:
    """What write_results wrote (the report plots it)."""
    with path.open(newline="") as file:
        return [Result(row["name"], float(row["due_s"]), float(row["latency_ms"]),
                       float(row["lag_ms"]), int(row["status"]), row["error"])
                for row in csv.DictReader(file)]


def lag_line(run: Run, rate: float, arrival: str) -> tuple[str, bool]:
    """How late the driver sent, as one line, and whether it kept up with its schedule."""
    lags = sorted(r.lag_ms for r in run.results)
    p99 = slo.percentile(lags, 0.99)
    kept_up = p99 <= LAG_WARNING_MS
    line = (f"driver: {len(lags):,} requests due at {rate:g} req/s ({arrival}), up to "
            f"{run.peak_in_flight:,} in flight; sent late by p50 {slo.percentile(lags, 0.5):.1f} "
            f"ms, p99 {p99:.1f} ms, max {lags[-1] if lags else 0:.1f} ms")
    if kept_up:
        return f"{line} (kept up)", True
    return (f"{line}: over {LAG_WARNING_MS:g} ms, the driver fell behind its schedule (too "
            "much to do, or a machine out of CPU), so these latencies measure the load "
            "generator too, not only the service"), False


def judge_run(run: Run, design: Design, gate: slo.Slo, tally: viewers.Tally, out: str) -> int:
    """Write the run down, log the driver's lag and the gate's verdict; the exit code."""
    write_results(run.results, Path(f"{out}_requests.csv"))
    failures = sum(not r.ok for r in run.results)
    stats = slo.latency_stats(design.endpoint, (r.latency_ms for r in run.results), failures,
                              run.seconds)
    if design.tallies_answers:
        logger.info(tally.line())
        tally.write_csv(Path(f"{out}_served_from.csv"))
    verdicts = slo.evaluate(gate, [stats] if run.results else [],
                            {design.endpoint: tally.problems()})
    return slo.judge(verdicts, csv_path=Path(f"{out}_slo.csv"))


async def _run(design: Design, args: argparse.Namespace, calls: Iterator[Call],
               due: Sequence[float]) -> Run:
    # aiohttp, not httpx: about 0.13 ms of CPU per request here against httpx's 2 ms, which
    # would make the driver, not the service, the bottleneck at a few hundred req/s.
    connector = aiohttp.TCPConnector(limit=args.max_connections)
    async with aiohttp.ClientSession(args.host, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        return await drive(session, design.endpoint, calls, due, args.timeout)


def _optional_float(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("design", choices=sorted(DESIGNS))
    parser.add_argument("--host", help="the service (default: its port on 127.0.0.1)")
    parser.add_argument("--rps", type=float, help="arrival rate (default: the locustfile's)")
    parser.add_argument("--duration", default="30s", help="how long requests arrive: 30s, 2m")
    parser.add_argument("--arrival", choices=(POISSON, CONSTANT), default=POISSON)
    parser.add_argument("--seed", type=int, help="for the schedule and the traffic")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds from sending to giving up on an answer (a failure)")
    parser.add_argument("--max-connections", type=int, default=100,
                        help="beyond this many in flight, requests wait for a connection")
    parser.add_argument("--world-dir", help="the synthetic world (default: the locustfile's)")
    parser.add_argument("--mix", choices=sorted(viewers.MIXES),
                        help=f"recs: who asks (default {viewers.DEFAULT_MIX}; viewers.py)")
    parser.add_argument("--out", help="prefix of the files written "
                                      "(default: reports/load/<design>/openloop)")
    parser.add_argument("--slo-p99-ms", default=os.environ.get("LOCUST_SLO_P99_MS"),
                        help="p99 budget in ms for this run (default: the design's)")
    parser.add_argument("--slo-max-failure-ratio",
                        default=os.environ.get("LOCUST_SLO_MAX_FAILURE_RATIO"),
                        help=f"failed/requests ceiling (default {slo.MAX_FAILURE_RATIO:g})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s/%(name)s: %(message)s")
    args = parse_args(argv)
    design = DESIGNS[args.design]
    if args.mix is not None:
        if not design.tallies_answers:
            logger.error("--mix is the recommendation traffic's; %s has none", args.design)
            return 2
        design = replace(design, calls=functools.partial(design.calls, mix=args.mix))
    args.host = args.host or design.host
    rate = args.rps if args.rps is not None else design.rps
    rng = random.Random(args.seed)
    tally = viewers.Tally()
    calls = design.calls(Path(args.world_dir or design.world), rng, tally)
    gc.freeze()  # the world is only read: full collections during the run need not rescan it
    due = schedule(rate, parse_duration(args.duration), args.arrival, rng)
    logger.info("%s: %d requests at %g req/s (%s) to %s", design.endpoint, len(due), rate,
                args.arrival, args.host)
    run = asyncio.run(_run(design, args, calls, due))
    line, kept_up = lag_line(run, rate, args.arrival)
    (logger.info if kept_up else logger.warning)(line)
    gate = slo.Slo({design.endpoint: design.p99_budget_ms}).overridden(
        _optional_float(args.slo_p99_ms), _optional_float(args.slo_max_failure_ratio))
    return judge_run(run, design, gate, tally, args.out or f"reports/load/{args.design}/openloop")


if __name__ == "__main__":
    sys.exit(main())
