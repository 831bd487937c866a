"""The last `make load` and `make load-sweep` results: where they are, what their gates said.

A local run writes reports/load/ (ignored by git); a fresh clone has the runs committed under
docs/evaluation/ instead. The newest of each kind is shown, and where it came from."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DESIGNS = ("recs", "fraud")
MODES = (("locust_slo.csv", "closed loop (Locust)"), ("openloop_slo.csv", "open loop"))


@dataclass(frozen=True)
class GateRow:
    design: str
    mode: str
    endpoint: str
    requests: int
    failures: int
    rps: float
    p99_ms: float
    budget_ms: float
    verdict: str


@dataclass(frozen=True)
class LoadResults:
    run_dir: Path | None          # a `make load` output: <dir>/recs, <dir>/fraud
    gates: list[GateRow]
    plots: list[Path]
    sweep_dir: Path | None        # a `make load-sweep` output: summary.md, p99_vs_rate.png
    sweep_summary: str


def _newest(candidates: list[Path]) -> Path | None:
    return max(candidates, key=lambda p: p.name, default=None)


def find_run(reports: Path, evaluation: Path) -> Path | None:
    local = reports / "load"
    if any((local / d / name).exists() for d in DESIGNS for name, _ in MODES):
        return local
    return _newest([p for p in evaluation.glob("make-load-*") if p.is_dir()])


def find_sweep(reports: Path, evaluation: Path) -> Path | None:
    local = reports / "load" / "sweep"
    if (local / "summary.md").exists():
        return local
    return _newest([p for p in (evaluation / "load-sweep").glob("*") if
                    (p / "summary.md").exists()])


def read_gates(run_dir: Path) -> list[GateRow]:
    rows = []
    for design in DESIGNS:
        for name, mode in MODES:
            path = run_dir / design / name
            if not path.exists():
                continue
            with path.open(newline="") as handle:
                rows += [GateRow(design, mode, r["name"], int(r["requests"]),
                                 int(r["failures"]), float(r["rps"]), float(r["p99_ms"]),
                                 float(r["p99_budget_ms"]), r["verdict"])
                         for r in csv.DictReader(handle)]
    return rows


def load_results(reports: Path, evaluation: Path) -> LoadResults:
    run_dir = find_run(reports, evaluation)
    sweep_dir = find_sweep(reports, evaluation)
    plots = sorted(run_dir.glob("*/*.png")) if run_dir else []
    if sweep_dir and (sweep_dir / "p99_vs_rate.png").exists():
        plots.append(sweep_dir / "p99_vs_rate.png")
    return LoadResults(run_dir, read_gates(run_dir) if run_dir else [], plots, sweep_dir,
                       (sweep_dir / "summary.md").read_text() if sweep_dir else "")
