"""The load button: one bounded open-loop run at a time, its p99 sampled live from the service.

The run is load-tests/openloop.py in a subprocess (the project's driver, its gate and its files);
while it runs, the target's own /metrics is read every second, so the page draws the service's
p99 per second against the budget before the driver has written a line."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.console.stack import Stack
from services.console.vitals import Snapshot, vitals

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = REPO_ROOT / "load-tests" / "openloop.py"
SAMPLE_S = 1.0
Design = Literal["recs", "fraud"]
# the synthetic world each design's traffic is drawn from, under the worlds folder
WORLDS = {"recs": "viewing", "fraud": "transactions"}
# design -> (service, route template, p99 budget in ms): the driver's own (load-tests/slo.py)
TARGETS: dict[str, tuple[str, str, float]] = {
    "recs": ("recommender", "/v1/recommendations/{user_id}", 100.0),
    "fraud": ("fraud", "/v1/score", 50.0),
}


class LoadRequest(BaseModel):
    """What the button asks for; the bounds are the console's settings, checked in `bounded`."""

    model_config = ConfigDict(frozen=True)

    design: Design
    rps: float = Field(gt=0, allow_inf_nan=False)
    duration_s: float = Field(gt=0, allow_inf_nan=False)


class LoadBusy(Exception):
    """One run at a time: two would measure each other."""


class LoadOutOfBounds(ValueError):
    """A run longer or faster than the console allows."""


def bounded(request: LoadRequest, max_duration_s: float, max_rps: float) -> LoadRequest:
    if request.duration_s > max_duration_s:
        raise LoadOutOfBounds(f"duration: at most {max_duration_s:g} s, got "
                              f"{request.duration_s:g}")
    if request.rps > max_rps:
        raise LoadOutOfBounds(f"rate: at most {max_rps:g} req/s, got {request.rps:g}")
    return request


@dataclass(frozen=True)
class LivePoint:
    t_s: float
    p99_ms: float | None
    rps: float | None


@dataclass
class LoadRun:
    request: LoadRequest
    budget_ms: float
    out_prefix: Path
    started: float = field(default_factory=time.monotonic)
    points: list[LivePoint] = field(default_factory=list)
    exit_code: int | None = None
    gate: dict[str, str] | None = None   # the driver's verdict row (openloop_slo.csv)
    log_tail: str = ""

    @property
    def running(self) -> bool:
        return self.exit_code is None


class LoadRunner:
    def __init__(self, stack: Stack, out_dir: Path, worlds_dir: Path | None) -> None:
        self.stack = stack
        self.out_dir = out_dir
        self.worlds_dir = worlds_dir
        self.current: LoadRun | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, request: LoadRequest) -> LoadRun:
        if self.current is not None and self.current.running:
            raise LoadBusy("a load run is in progress: wait for it to finish")
        service, _, budget = TARGETS[request.design]
        out = self.out_dir / request.design / "openloop"
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(DRIVER), request.design,
                   "--host", self.stack.upstreams[service].url, "--rps", f"{request.rps:g}",
                   "--duration", f"{request.duration_s:g}s", "--out", str(out)]
        if self.worlds_dir is not None:
            command += ["--world-dir", str(self.worlds_dir / WORLDS[request.design])]
        self._process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        run = LoadRun(request, budget, out)
        self.current = run
        self._task = asyncio.create_task(self._follow(run, self._process))
        logger.info("load run started", extra={"command": command})
        return run

    async def _follow(self, run: LoadRun, process: asyncio.subprocess.Process) -> None:
        service, route, _ = TARGETS[run.request.design]
        output = asyncio.create_task(process.communicate())
        before: Snapshot | None = await self.stack.snapshot(service, route)
        while not output.done():
            await asyncio.wait({output}, timeout=SAMPLE_S)
            now = await self.stack.snapshot(service, route)
            if now is not None:
                window = vitals(before, now)
                run.points.append(LivePoint(round(time.monotonic() - run.started, 1),
                                            window.p99_ms, window.rate_rps))
                before = now
        stdout, _ = output.result()
        run.log_tail = "\n".join(stdout.decode(errors="replace").splitlines()[-8:])
        run.gate = read_gate(Path(f"{run.out_prefix}_slo.csv"))
        run.exit_code = process.returncode if process.returncode is not None else -1

    async def close(self) -> None:
        """Stop a run still going (the console is shutting down)."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            with contextlib.suppress(ProcessLookupError):
                await self._process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def read_gate(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[0] if rows else None
