"""Cheap probes of what else went on during a run, for the chaos soak and the benchmarks: each
Redis node's forks, the Kafka brokers' GC pauses, each process's CPU second by second.

Every probe keeps its times in seconds from one `start` (an epoch, time.time()) the caller
gives, so what they saw lines up with the load's own clock.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis


class ForkTracker:
    """Forks seen in a node's INFO polls (`observe` once a poll): a fork running at a poll
    extends its window; one that began and ended between two polls shows by `total_forks`
    growing, its window the interval it fell in. A poll of a node that is down (None) closes
    what was open; its restart resets the counter, which is then read afresh (a fork running
    at its first answer counted)."""

    def __init__(self) -> None:
        self.forks: list[dict[str, Any]] = []  # from_s, to_s, kind, fork_ms (the fork call)
        self._total: int | None = None
        self._open: dict[str, Any] | None = None
        self._last_s: float | None = None

    def observe(self, at: float, info: Mapping[str, Any] | None) -> None:
        last_s, self._last_s = self._last_s, at
        if info is None:
            self._open, self._total = None, None
            return
        kind = ("aof_rewrite" if info["aof_rewrite_in_progress"] else
                "rdb_bgsave" if info["rdb_bgsave_in_progress"] else None)
        total = int(info["total_forks"])
        if self._total is None or total < self._total:  # the first poll, or a restarted node
            # what a restarted node forked since its start is this run's; at the first poll
            # a fork in progress began before the run
            new = min(total, 1) if last_s is not None and kind is not None else 0
        else:
            new = total - self._total
        self._total = total
        if self._open is not None and kind == self._open["kind"] and new == 0:
            self._open["to_s"] = at
            return
        self._open = None
        for _ in range(new):  # began since the last poll: running now, or already over
            self.forks.append({"from_s": at if last_s is None else last_s, "to_s": at,
                               "kind": kind or "short",
                               "fork_ms": round(info["latest_fork_usec"] / 1000, 2)})
        if new and kind is not None:
            self._open = self.forks[-1]


class RedisForks:
    """Redis's forks during a run (an AOF rewrite, an RDB snapshot or a replica's full sync:
    the child writes the whole dataset, a core for seconds on a machine with two) and when each
    ran, from INFO every 100 ms (ForkTracker): the latency tail of a run often sits in those
    windows. A node that is down (killed by a chaos test) is polled until it answers again."""

    def __init__(self, address: str, password: str | None = None,
                 start: float | None = None, every_s: float = 0.1) -> None:
        self._client = redis.Redis.from_url(address, password=password, decode_responses=True,
                                            socket_timeout=1.0, socket_connect_timeout=1.0)
        self._start = time.time() if start is None else start
        self._every_s = every_s
        self._tracker = ForkTracker()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _info(self) -> dict[str, Any] | None:
        try:
            return dict(self._client.info("persistence", "stats"))
        except redis.RedisError:
            return None  # down or restarting: nothing forks there

    def _watch(self) -> None:
        while not self._stop.wait(self._every_s):
            info = self._info()
            self._tracker.observe(round(time.time() - self._start, 2), info)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        self._client.close()
        forks = self._tracker.forks
        return {"forks": len(forks),
                "windows_s": [[f["from_s"], f["to_s"]] for f in forks],
                "seconds": round(sum(f["to_s"] - f["from_s"] for f in forks), 1),
                "details": forks}


def command_costs(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]],
                  per: int) -> dict[str, Any]:
    """What Redis's commands cost between two `INFO commandstats` readings (redis-py's parsed
    form: `cmdstat_NAME` -> {calls, usec, ...}), per one of `per` units (a transaction): calls
    and µs of each command that ran, most costly first. A script's commands are counted twice by
    Redis, in their own entries and inside the script's (EVALSHA, FCALL): `scripts_usec_per` is
    the scripts' whole time and `commands_usec_per` every other command's (the probes' INFO left
    out). Where the scripts run all the commands, as the fraud state's do, the difference is
    the interpreter's own (argument conversion, Lua)."""
    scripts = {"evalsha", "eval", "fcall", "evalsha_ro", "eval_ro", "fcall_ro"}
    rows: dict[str, dict[str, float]] = {}
    for key, now in after.items():
        then = before.get(key, {"calls": 0, "usec": 0})
        calls, usec = int(now["calls"]) - int(then["calls"]), int(now["usec"]) - int(then["usec"])
        if calls > 0:
            rows[key.removeprefix("cmdstat_")] = {"calls": calls, "usec": usec}
    units = max(per, 1)
    script_usec = sum(r["usec"] for name, r in rows.items() if name in scripts)
    command_usec = sum(r["usec"] for name, r in rows.items()
                       if name not in scripts and name != "info")
    return {
        "per": per,
        "commands": {name: {"calls": r["calls"], "calls_per": round(r["calls"] / units, 3),
                            "usec_per": round(r["usec"] / units, 2),
                            "usec_per_call": round(r["usec"] / r["calls"], 2)}
                     for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["usec"])},
        "scripts_usec_per": round(script_usec / units, 2),
        "commands_usec_per": round(command_usec / units, 2),
    }


class RedisCommands:
    """Redis's commands from now until `stop`, per unit of work (command_costs)."""

    def __init__(self, address: str) -> None:
        self._client = redis.Redis.from_url(address)
        self._before = self._client.info("commandstats")

    def stop(self, per: int) -> dict[str, Any]:
        after = self._client.info("commandstats")
        self._client.close()
        return command_costs(self._before, after, per)


# -Xlog:gc with the utctime decorator (infra/kafka/cluster-node.sh, KAFKA_NODE_GC_LOG), e.g.
# [2026-12-07T04:40:12.345+0000] GC(12) Pause Young (Normal) (G1 Evacuation Pause)
#     45M->12M(384M) 3.456ms   (one line)
GC_PAUSE = re.compile(r"^\[(?P<at>[^\]]+)\] GC\(\d+\) (?P<what>Pause .*?) "
                      r"\d+[KMG]->\d+[KMG]\(\d+[KMG]\) (?P<ms>\d+(?:\.\d+)?)ms$")


def gc_pauses(text: str, start: float) -> list[dict[str, Any]]:
    """Each stop-the-world pause in a JVM's `-Xlog:gc` file: when it ended (s after `start`, an
    epoch), how long it took, and what it was (Pause Young, Pause Remark, ...)."""
    pauses = []
    for line in text.splitlines():
        match = GC_PAUSE.match(line)
        if match is None:
            continue
        ended = datetime.strptime(match["at"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        ms = float(match["ms"])
        pauses.append({"from_s": round(ended - ms / 1000 - start, 3),
                       "to_s": round(ended - start, 3), "ms": ms,
                       "what": match["what"].strip()})
    return pauses


def gc_pauses_in(logs: Mapping[str, list[Path]], start: float, until_s: float
                 ) -> dict[str, list[dict[str, Any]]]:
    """Every broker's pauses from `start` to `until_s` after it, from all its GC logs (a killed
    and restarted broker writes a new file, named by its process id)."""
    return {name: sorted((p for path in paths
                          for p in gc_pauses(path.read_text(errors="replace"), start)
                          if 0 <= p["to_s"] <= until_s), key=lambda p: p["to_s"])
            for name, paths in logs.items()}


class ProcessCpu:
    """Each named group of processes' CPU (cores used) second by second, beside the machine's
    busy and stolen cores: what else ran in the second a request was slow. `groups` maps a name
    to a function giving its pids now (a restarted node or a replaced worker has a new one);
    a process that started during the run counts from its start."""

    def __init__(self, groups: Mapping[str, Callable[[], set[int]]],
                 start: float | None = None, every_s: float = 1.0) -> None:
        self._groups = groups
        self._start = time.time() if start is None else start
        self._every_s = every_s
        self._seen: dict[int, float] = {}
        self._machine = self._machine_s()
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        for pids in self._pids().values():
            for pid in pids:
                self._seen[pid] = self._cpu_s(pid) or 0.0
        self._thread.start()

    @staticmethod
    def _machine_s() -> tuple[float, float, float]:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + times.irq + times.softirq
        return busy, getattr(times, "steal", 0.0), time.time()

    @staticmethod
    def _cpu_s(pid: int) -> float | None:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return float(times.user + times.system)

    def _pids(self) -> dict[str, set[int]]:
        found = {}
        for name, pids in self._groups.items():
            try:
                found[name] = pids()
            except (psutil.Error, OSError):
                found[name] = set()
        return found

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def _sample(self) -> None:
        busy, steal, now = self._machine_s()
        elapsed = now - self._machine[2]
        groups: dict[str, float] = {}
        for name, pids in self._pids().items():
            used = 0.0
            for pid in pids:
                cpu = self._cpu_s(pid)
                if cpu is None:
                    continue
                used += cpu - self._seen.get(pid, 0.0)
                self._seen[pid] = cpu
            groups[name] = round(used / elapsed, 2)
        machine_busy = (busy - self._machine[0]) / elapsed
        # what the named processes did not use: other work on the machine, and the kernel's
        groups["others"] = round(max(0.0, machine_busy - sum(groups.values())), 2)
        self.samples.append({"t_s": round(now - self._start, 1),
                             "busy": round(machine_busy, 2),
                             "steal": round((steal - self._machine[1]) / elapsed, 2),
                             "groups": groups})
        self._machine = (busy, steal, now)

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples
