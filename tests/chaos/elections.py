"""What the surviving Kafka nodes logged about a killed broker: when the active controller fenced
it and moved its partitions (fault 1's gap, read from the brokers' own clocks)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

# log4j2.properties' pattern: "[2026-12-06 06:38:12,345] INFO message (logger)", local time
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] ")
# The active controller (org.apache.kafka.controller at INFO) when the broker's session lapses;
# in KRaft the fencing record and the partitions' new leaders and in-sync sets are written in
# the same step, so the next line says how many partitions changed with it.
_FENCED = "Fencing broker {victim} "
_FENCED_ANY = re.compile(r"Fencing broker (\d+) ")
_CHANGED = re.compile(r"handleBrokerFenced: changing (\d+) partition")
# A survivor winning the KRaft vote: the killed broker was the active controller, and the new
# one starts its own session clocks, so the fencing comes a session after this.
_QUORUM_LEADER = "Completed transition to Leader"
# Each node logs its own win with the quorum's epoch; the latest epoch's winner leads now.
_LEADER_EPOCH = re.compile(r"Completed transition to Leader\(.*?\bepoch=(\d+)")
# A survivor starting a vote (after its fetch timeout, or after a round that elected no one):
# two of them in one epoch is a split vote, which waits out the election timeout to retry.
_CANDIDATE = "Completed transition to Candidate"


def election_after_kill(logs: Iterable[Path], victim_id: int, killed: datetime,
                        restarted: datetime) -> dict[str, float | int | None]:
    """Seconds from the kill to the dead broker's fencing (and to a new active controller, if
    it was the active one), how many partitions got a new leader or in-sync set with the
    fencing, and how many times the controller fenced any broker meanwhile (more than once: a
    live broker missed its heartbeats, the cost of a short session)."""
    fenced: datetime | None = None
    changed: int | None = None
    quorum_leader: datetime | None = None
    fencings = candidacies = 0
    for at, line in _lines_between(logs, killed, restarted):
        if quorum_leader is None and _QUORUM_LEADER in line:
            quorum_leader = at
        if quorum_leader is None and _CANDIDATE in line:
            candidacies += 1
        if "because its session has timed out" in line:
            fencings += 1
        if fenced is None and _FENCED.format(victim=victim_id) in line:
            fenced = at
        elif fenced is not None and changed is None and (m := _CHANGED.search(line)):
            changed = int(m.group(1))
    return {"fenced_after_kill_s": _since(killed, fenced),
            "controller_elected_after_kill_s": _since(killed, quorum_leader),
            "partitions_moved_at_fencing": changed, "fencings_while_down": fencings,
            "controller_candidacies": candidacies}


def active_controller(logs: dict[str, Path]) -> str | None:
    """The node leading the KRaft quorum now: the one whose log won the latest epoch."""
    latest: tuple[int, str] | None = None
    for name, path in logs.items():
        for match in _LEADER_EPOCH.finditer(path.read_text(errors="replace")):
            if latest is None or int(match.group(1)) > latest[0]:
                latest = (int(match.group(1)), name)
    return None if latest is None else latest[1]


def fencings(logs: Iterable[Path], after: datetime, before: datetime
             ) -> list[tuple[datetime, int]]:
    """Every broker the active controller fenced for a lapsed session, with when: a run's
    count beyond its kills is live brokers fenced by mistake (a pause past the session)."""
    found = set()
    for at, line in _lines_between(logs, after, before):
        if "because its session has timed out" in line and (m := _FENCED_ANY.search(line)):
            found.add((at, int(m.group(1))))
    return sorted(found)


def _since(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 2)


def session_settings(node_log: Path) -> dict[str, int]:
    """The heartbeat, session and controller fetch and election timeouts a node ran with, from the
    server.properties cluster-node.sh wrote beside its log (Kafka's defaults where the file
    sets none; a key set twice counts by its last value, as Kafka reads it)."""
    lines = (node_log.with_suffix("") / "server.properties").read_text().splitlines()
    properties = dict(line.partition("=")[::2] for line in lines
                      if line.strip() and not line.startswith("#"))
    return {"broker_heartbeat_interval_ms": int(properties.get("broker.heartbeat.interval.ms",
                                                               2000)),
            "broker_session_timeout_ms": int(properties.get("broker.session.timeout.ms", 9000)),
            "controller_quorum_fetch_timeout_ms": int(
                properties.get("controller.quorum.fetch.timeout.ms", 2000)),
            "controller_quorum_election_timeout_ms": int(
                properties.get("controller.quorum.election.timeout.ms", 1000))}


def _lines_between(paths: Iterable[Path], after: datetime, before: datetime
                   ) -> list[tuple[datetime, str]]:
    found = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stamp = _STAMP.match(line)
            if stamp is None:
                continue
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
            if after <= at < before:
                found.append((at, line))
    return sorted(found)
