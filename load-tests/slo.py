"""The load-test gate: a p99 budget per endpoint and a failure ceiling, judged as a run ends.

A locustfile declares its budgets and installs the gate once:

    slo.install(events, slo.Slo({"POST /v1/score": 50.0}))

The open-loop driver (openloop.py) judges plain latency lists with the same rules:
`evaluate(gate, [latency_stats(name, latencies_ms, failures, seconds)])`, then `judge`.

When a Locust run ends (a headless run's --run-time, or Ctrl-C on the web UI) every endpoint gets
one verdict line (p50, p95, p99, max, req/s, failures, PASS or FAIL) and the process exits 1 if
any endpoint broke its budget, more than max_failure_ratio of its requests failed, an endpoint
with a budget saw no requests at all, or the locustfile itself raised. `--slo-p99-ms` and
`--slo-max-failure-ratio` (or LOCUST_SLO_P99_MS, LOCUST_SLO_MAX_FAILURE_RATIO) override the
locustfile's numbers for one run. Plain Python: importing Locust here would monkey-patch pytest.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.event import Events

logger = logging.getLogger(__name__)

MAX_FAILURE_RATIO = 0.001


@dataclass(frozen=True)
class Slo:
    """p99 budgets in ms keyed by Locust request name, and the failure ratio every endpoint may
    not exceed. An endpoint without a budget is judged on failures alone."""

    p99_budgets_ms: Mapping[str, float]
    max_failure_ratio: float = MAX_FAILURE_RATIO

    def overridden(self, p99_ms: float | None = None,
                   max_failure_ratio: float | None = None) -> Slo:
        """This gate with every budget set to p99_ms and/or another failure ceiling."""
        budgets = dict(self.p99_budgets_ms)
        if p99_ms is not None:
            budgets = dict.fromkeys(budgets, p99_ms)
        ceiling = self.max_failure_ratio if max_failure_ratio is None else max_failure_ratio
        return replace(self, p99_budgets_ms=budgets, max_failure_ratio=ceiling)


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint's numbers over a run; latencies in ms as Locust measured them."""

    name: str
    requests: int
    failures: int
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rps: float = 0.0

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Verdict:
    stats: EndpointStats
    p99_budget_ms: float | None
    max_failure_ratio: float
    problems: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """One line a person reads at the end of a run, e.g.
        SLO PASS POST /v1/score: p50 3 ms, p95 6 ms, p99 9 ms (budget 50 ms), max 41.2 ms,
        501.3 req/s, 0 of 15,040 failed (0.000%, max 0.100%)"""
        s = self.stats
        budget = "no budget" if self.p99_budget_ms is None else f"budget {self.p99_budget_ms:g} ms"
        text = (f"SLO {'PASS' if self.passed else 'FAIL'} {s.name}: p50 {s.p50_ms:g} ms, "
                f"p95 {s.p95_ms:g} ms, p99 {s.p99_ms:g} ms ({budget}), max {s.max_ms:.1f} ms, "
                f"{s.rps:.1f} req/s, {s.failures:,} of {s.requests:,} failed "
                f"({s.failure_ratio:.3%}, max {self.max_failure_ratio:.3%})")
        return text if self.passed else f"{text} -- {'; '.join(self.problems)}"


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ascending values: the smallest value that at least
    `fraction` of them are at or below (p99 of 1,000 values is the 990th); 0 for no values."""
    if not ordered:
        return 0.0
    rank = math.ceil(round(fraction * len(ordered), 9))  # round: 0.29 * 100 is 28.999...
    return ordered[max(1, rank) - 1]


def latency_stats(name: str, latencies_ms: Iterable[float], failures: int,
                  seconds: float) -> EndpointStats:
    """One endpoint's numbers from every request's latency, failed ones included as Locust
    counts them; percentiles to 0.1 ms, req/s over `seconds`."""
    ordered = sorted(latencies_ms)
    return EndpointStats(
        name=name, requests=len(ordered), failures=failures,
        p50_ms=round(percentile(ordered, 0.50), 1), p95_ms=round(percentile(ordered, 0.95), 1),
        p99_ms=round(percentile(ordered, 0.99), 1), max_ms=ordered[-1] if ordered else 0.0,
        rps=len(ordered) / seconds if seconds > 0 else 0.0,
    )


def evaluate(slo: Slo, endpoints: Iterable[EndpointStats],
             problems: Mapping[str, Sequence[str]] | None = None) -> list[Verdict]:
    """A verdict per endpoint seen, plus a failing one per budgeted endpoint that saw nothing.
    `problems` fails endpoints for what the numbers don't show (malformed answers), by name."""
    seen = list(endpoints)
    names = {e.name for e in seen}
    unseen = [EndpointStats(name, 0, 0) for name in slo.p99_budgets_ms if name not in names]
    return [_verdict(slo, e, (problems or {}).get(e.name, ())) for e in [*seen, *unseen]]


def _verdict(slo: Slo, stats: EndpointStats, extra: Sequence[str] = ()) -> Verdict:
    budget = slo.p99_budgets_ms.get(stats.name)
    problems: list[str] = []
    if stats.requests == 0:
        problems.append("no requests")
    if budget is not None and stats.p99_ms > budget:
        problems.append(f"p99 {stats.p99_ms:g} ms > {budget:g} ms")
    if stats.failure_ratio > slo.max_failure_ratio:
        problems.append(f"failures {stats.failure_ratio:.3%} > {slo.max_failure_ratio:.3%}")
    return Verdict(stats, budget, slo.max_failure_ratio, (*problems, *extra))


def write_csv(verdicts: Sequence[Verdict], path: Path) -> None:
    """The numbers the gate judged, one row per endpoint (Locust's own _stats.csv is a snapshot
    taken every second, so its last rows can miss the run's final second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*(f.name for f in fields(EndpointStats)), "p99_budget_ms",
                         "max_failure_ratio", "verdict", "problems"])
        for v in verdicts:
            writer.writerow([*asdict(v.stats).values(), v.p99_budget_ms, v.max_failure_ratio,
                             "PASS" if v.passed else "FAIL", "; ".join(v.problems)])


def read_csv(path: Path) -> list[Verdict]:
    """The verdicts write_csv wrote (the report reads both modes' runs back with it)."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [
        Verdict(
            EndpointStats(row["name"], int(row["requests"]), int(row["failures"]),
                          **{f.name: float(row[f.name]) for f in fields(EndpointStats)
                             if f.type == "float"}),
            float(row["p99_budget_ms"]) if row["p99_budget_ms"] else None,
            float(row["max_failure_ratio"]),
            tuple(p for p in row["problems"].split("; ") if p),
        )
        for row in rows
    ]


def judge(verdicts: Sequence[Verdict], run_problems: Sequence[str] = (),
          csv_path: Path | None = None) -> int:
    """Log a line per verdict, one per problem of the run as a whole (a locustfile that raised),
    and the run's verdict; write the verdicts to csv_path. The process exit code: 0 or 1."""
    if csv_path is not None:
        write_csv(verdicts, csv_path)
    for verdict in verdicts:
        (logger.info if verdict.passed else logger.error)(verdict.line())
    for problem in run_problems:
        logger.error("SLO FAIL %s", problem)
    failed = [v.stats.name for v in verdicts if not v.passed]
    if failed or run_problems:
        logger.error("SLO gate FAILED: %s", ", ".join([*failed, *run_problems]))
        return 1
    logger.info("SLO gate PASSED: %d endpoint(s) within budget", len(verdicts))
    return 0


# --- Locust at the edge ----------------------------------------------------------------------


class LocustEntry(Protocol):
    """What the gate reads of a locust.stats.StatsEntry."""

    @property
    def name(self) -> str: ...
    @property
    def num_requests(self) -> int: ...
    @property
    def num_failures(self) -> int: ...
    @property
    def max_response_time(self) -> float: ...
    @property
    def total_rps(self) -> float: ...

    def get_response_time_percentile(self, percent: float) -> float: ...


def endpoint_stats(entries: Iterable[LocustEntry]) -> list[EndpointStats]:
    """Locust's entries (one per request name) as the gate's numbers; empty ones are skipped."""
    return [
        EndpointStats(
            name=e.name, requests=e.num_requests, failures=e.num_failures,
            p50_ms=e.get_response_time_percentile(0.50),
            p95_ms=e.get_response_time_percentile(0.95),
            p99_ms=e.get_response_time_percentile(0.99),
            max_ms=e.max_response_time, rps=e.total_rps,
        )
        for e in entries
        if e.num_requests or e.num_failures
    ]


def _optional_float(value: object) -> float | None:
    """A command-line or web-UI value: unset (None, "") means "keep the locustfile's number"."""
    return None if value is None or value == "" else float(str(value))


EndpointProblems = Callable[[], Mapping[str, Sequence[str]]]


def install(events: Events, slo: Slo, problems: EndpointProblems | None = None) -> None:
    """Add the gate's options to Locust's command line and judge the run when Locust quits.
    `problems`, called then, fails endpoints for what Locust's numbers don't show, by name."""

    def _add_options(parser: Any, **_: Any) -> None:
        parser.add_argument("--slo-p99-ms", default=None, env_var="LOCUST_SLO_P99_MS",
                            help="SLO gate: p99 budget in ms for every endpoint of this run "
                                 f"(default: the locustfile's, {dict(slo.p99_budgets_ms)})")
        parser.add_argument("--slo-max-failure-ratio", default=None,
                            env_var="LOCUST_SLO_MAX_FAILURE_RATIO",
                            help="SLO gate: failed/requests ceiling per endpoint "
                                 f"(default {slo.max_failure_ratio:g})")

    def _on_quitting(environment: Environment, **_: Any) -> None:
        options = environment.parsed_options
        if options is not None and getattr(options, "worker", False):
            return  # a worker holds a share of the numbers; the master judges the whole run
        gate = slo.overridden(_optional_float(getattr(options, "slo_p99_ms", None)),
                              _optional_float(getattr(options, "slo_max_failure_ratio", None)))
        environment.process_exit_code = judge_run(gate, environment,
                                                  problems() if problems else None)

    events.init_command_line_parser.add_listener(_add_options)
    events.quitting.add_listener(_on_quitting)


def judge_run(gate: Slo, environment: Environment,
              problems: Mapping[str, Sequence[str]] | None = None) -> int:
    """Judge Locust's numbers, log the verdicts, write them beside Locust's CSV files (with --csv
    PREFIX: PREFIX_slo.csv); the process exit code (0 pass, 1 fail)."""
    verdicts = evaluate(gate, endpoint_stats(environment.stats.entries.values()), problems)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    exceptions = len(environment.runner.exceptions) if environment.runner else 0
    raised = ([f"the locustfile raised {exceptions} distinct exception(s): see the report"]
              if exceptions else [])
    return judge(verdicts, raised, Path(f"{prefix}_slo.csv") if prefix else None)
