"""A load-test run as a report: per endpoint, a PNG of latency percentiles over time against the
budget, and summary.md with the closed-loop (Locust) and open-loop numbers side by side.

    .venv/bin/python load-tests/report.py reports/load/fraud reports/load/recs

Reads what `make load` writes into each directory, and shows a mode that did not run as such:

    locust_slo.csv, locust_stats_history.csv, locust_served_from.csv     Locust (--csv locust)
    openloop_slo.csv, openloop_requests.csv, openloop_served_from.csv    openloop.py

and writes <endpoint>.png and summary.md beside them (the summary also goes to stdout).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import openloop  # siblings: load-tests/ is on sys.path when this runs as a script
import slo
import viewers
from matplotlib.figure import Figure

WINDOW_S = 10.0  # Locust's history percentiles cover about the last 10 s; the open loop's too
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Mode:
    prefix: str   # of the files in the run's directory
    title: str


LOCUST = Mode("locust", "closed loop (Locust)")
OPEN_LOOP = Mode("openloop", "open loop")
MODES = (LOCUST, OPEN_LOOP)


@dataclass(frozen=True)
class Series:
    """One endpoint's percentiles over a run: seconds from its start, ms per percentile."""

    seconds: list[float]
    ms: dict[str, list[float]]


# --- Reading a run ---------------------------------------------------------------------------


def locust_series(path: Path) -> dict[str, Series]:
    """Per endpoint, from Locust's --csv-full-history file: every second, the percentiles of
    about the last 10 s. Rows before the first window (all zero) and the Aggregated row are
    left out."""
    with path.open(newline="") as file:
        rows = [r for r in csv.DictReader(file) if r["Name"] != "Aggregated"]
    if not rows:
        return {}
    start = min(int(r["Timestamp"]) for r in rows)
    series: dict[str, Series] = {}
    for row in rows:
        values = [row[f"{round(q * 100)}%"] for _, q in PERCENTILES]
        if "N/A" in values or not any(float(v) for v in values):
            continue
        entry = series.setdefault(row["Name"], Series([], {label: [] for label, _ in PERCENTILES}))
        entry.seconds.append(int(row["Timestamp"]) - start)
        for (label, _), value in zip(PERCENTILES, values, strict=True):
            entry.ms[label].append(float(value))
    return series


def open_loop_series(results: Sequence[openloop.Result]) -> dict[str, Series]:
    """Per endpoint, every second: the percentiles of the requests due in the last WINDOW_S
    (by due time: a request that waited belongs to when it should have gone out)."""
    series: dict[str, Series] = {}
    for name in dict.fromkeys(r.name for r in results):
        mine = sorted((r.due_s, r.latency_ms) for r in results if r.name == name)
        entry = Series([], {label: [] for label, _ in PERCENTILES})
        for second in range(1, math.ceil(mine[-1][0]) + 1):
            window = sorted(ms for due, ms in mine if second - WINDOW_S < due <= second)
            if window:
                entry.seconds.append(float(second))
                for label, q in PERCENTILES:
                    entry.ms[label].append(slo.percentile(window, q))
        series[name] = entry
    return series


@dataclass(frozen=True)
class ModeRun:
    """What one mode left in the run's directory (all empty when it did not run)."""

    verdicts: dict[str, slo.Verdict]
    series: dict[str, Series]
    served_from: dict[str, int]
    lags_ms: list[float]
    written: datetime | None

    @classmethod
    def read(cls, directory: Path, mode: Mode) -> ModeRun:
        gate_csv = directory / f"{mode.prefix}_slo.csv"
        if not gate_csv.exists():
            return cls({}, {}, {}, [], None)
        verdicts = {v.stats.name: v for v in slo.read_csv(gate_csv)}
        served = directory / f"{mode.prefix}_served_from.csv"
        served_from = viewers.read_tally_csv(served) if served.exists() else {}
        series: dict[str, Series] = {}
        lags: list[float] = []
        if mode is LOCUST and (history := directory / "locust_stats_history.csv").exists():
            series = locust_series(history)
        if mode is OPEN_LOOP and (requests := directory / "openloop_requests.csv").exists():
            results = openloop.read_results(requests)
            series, lags = open_loop_series(results), sorted(r.lag_ms for r in results)
        written = datetime.fromtimestamp(gate_csv.stat().st_mtime, UTC)
        return cls(verdicts, series, served_from, lags, written)


# --- Writing it ------------------------------------------------------------------------------


def file_name(endpoint: str) -> str:
    """GET /v1/recommendations/{user_id} -> GET_v1_recommendations_user_id.png"""
    return re.sub(r"[^A-Za-z0-9]+", "_", endpoint).strip("_") + ".png"


def plot(endpoint: str, budget_ms: float | None, runs: dict[Mode, ModeRun], path: Path) -> None:
    """The two modes one above the other, on one time and one latency axis."""
    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.subplots(len(MODES), 1, sharex=True, sharey=True)
    figure.suptitle(f"{endpoint}: latency percentiles over the last {WINDOW_S:g} s")
    for ax, mode in zip(axes, MODES, strict=True):
        series = runs[mode].series.get(endpoint)
        if series is None:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
        else:
            for label, _ in PERCENTILES:
                ax.plot(series.seconds, series.ms[label], label=label)
        if budget_ms is not None:
            ax.axhline(budget_ms, color="red", linestyle="--", label=f"budget {budget_ms:g} ms")
        ax.set_title(mode.title, loc="left")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
        if series is not None or budget_ms is not None:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    highest = [ms for run in runs.values() if (series := run.series.get(endpoint))
               for values in series.ms.values() for ms in values]
    axes[0].set_ylim(0, 1.08 * max([*highest, budget_ms or 0.0, 1.0]))  # shared by both
    axes[-1].set_xlabel("seconds from the start of the run")
    figure.savefig(path, dpi=100)


def _cell(verdict: slo.Verdict | None, field: str) -> str:
    if verdict is None:
        return "not run"
    s = verdict.stats
    cells = {
        "requests": f"{s.requests:,}",
        "p50": f"{s.p50_ms:g}", "p95": f"{s.p95_ms:g}", "p99": f"{s.p99_ms:g}",
        "max": f"{s.max_ms:.1f}", "rps": f"{s.rps:.1f}",
        "errors": f"{s.failures:,} ({s.failure_ratio:.3%})",
        "verdict": "PASS" if verdict.passed else f"FAIL: {'; '.join(verdict.problems)}",
    }
    return cells[field]


ROWS = (("requests", "requests"), ("p50", "p50 ms"), ("p95", "p95 ms"), ("p99", "p99 ms"),
        ("max", "max ms"), ("rps", "req/s"), ("errors", "errors"), ("verdict", "verdict"))


def _served_from(counts: dict[str, int]) -> str:
    total = sum(counts.get(source, 0) for source in viewers.SERVED_FROM)
    if not counts:
        return "not run"
    shares = ", ".join(f"{source} {counts.get(source, 0) / total if total else 0:.0%}"
                       for source in viewers.SERVED_FROM)
    return f"{shares}; {counts.get('malformed', 0):,} malformed"


def endpoint_section(endpoint: str, runs: dict[Mode, ModeRun]) -> list[str]:
    verdicts = {mode: runs[mode].verdicts.get(endpoint) for mode in MODES}
    budget = next((v.p99_budget_ms for v in verdicts.values() if v is not None), None)
    corner = "no budget" if budget is None else f"budget: p99 ≤ {budget:g} ms"
    lines = [f"## {endpoint}", "",
             f"| {corner} |" + "".join(f" {mode.title} |" for mode in MODES),
             "|---|" + "---:|" * len(MODES)]
    lines += [f"| {title} |" + "".join(f" {_cell(verdicts[m], key)} |" for m in MODES)
              for key, title in ROWS]
    if any(runs[m].served_from for m in MODES):
        lines.append("| served_from |" + "".join(f" {_served_from(runs[m].served_from)} |"
                                                 for m in MODES))
    return [*lines, "", f"![{endpoint}]({file_name(endpoint)})", ""]


def driver_line(lags_ms: Sequence[float]) -> str:
    if not lags_ms:
        return "Open-loop driver: not run."
    p99 = slo.percentile(lags_ms, 0.99)
    verdict = ("it kept up with its schedule" if p99 <= openloop.LAG_WARNING_MS else
               f"over {openloop.LAG_WARNING_MS:g} ms: the driver fell behind its schedule (too "
               "much to do, or a machine out of CPU), so the open-loop latencies measure the "
               "load generator too")
    return (f"Open-loop driver: requests went out later than due by p50 "
            f"{slo.percentile(lags_ms, 0.5):.1f} ms, p99 {p99:.1f} ms, max {lags_ms[-1]:.1f} ms; "
            f"{verdict}.")


def summary(design: str, runs: dict[Mode, ModeRun]) -> str:
    endpoints = list(dict.fromkeys(name for m in MODES for name in runs[m].verdicts))
    passed = all(v.passed for m in MODES for v in runs[m].verdicts.values())
    when = ", ".join(f"{m.title} {runs[m].written:%Y-%m-%d %H:%M} UTC" if runs[m].written
                     else f"{m.title} not run" for m in MODES)
    lines = [
        f"# Load test: {design} ({'PASS' if passed else 'FAIL'})", "",
        f"Runs: {when}. Closed loop: Locust users each wait for an answer before the next "
        "request. Open loop: requests go out on a fixed schedule and latency counts from when "
        "each was due, so queueing anywhere shows (load-tests/README.md). Latencies are "
        "client-side, in ms; failures are non-2xx answers, malformed answers, no answer.", "",
        driver_line(runs[OPEN_LOOP].lags_ms), "",
    ]
    for endpoint in endpoints:
        lines += endpoint_section(endpoint, runs)
    return "\n".join(lines)


def write_report(directory: Path) -> str:
    """Plots and summary.md for the run in directory; the summary."""
    runs = {mode: ModeRun.read(directory, mode) for mode in MODES}
    if not any(runs[m].verdicts for m in MODES):
        raise FileNotFoundError(f"no load-test run in {directory} "
                                f"({', '.join(f'{m.prefix}_slo.csv' for m in MODES)})")
    text = summary(directory.name, runs)
    for endpoint in dict.fromkeys(name for m in MODES for name in runs[m].verdicts):
        budget = next((runs[m].verdicts[endpoint].p99_budget_ms for m in MODES
                       if endpoint in runs[m].verdicts), None)
        plot(endpoint, budget, runs, directory / file_name(endpoint))
    (directory / "summary.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("directories", nargs="+", type=Path,
                        help="a run's directory per design, e.g. reports/load/fraud")
    args = parser.parse_args(argv)
    missing = 0
    for directory in args.directories:
        try:
            print(write_report(directory))
        except FileNotFoundError as error:
            print(f"report: {error}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
