"""A/B counters per experiment variation on Redis: exposed and converted units, impressions, clicks,
empty lists and the lists' latencies (the guardrails read the last two).

Every count is the size of a set (units, request ids, click event ids), so writing the same event
twice changes nothing, whatever the consumer's dedupe did. Exposed and converted units are sorted
sets scored by when (first exposure, conversion; `ZADD LT` keeps the earliest), so the count at
any instant is one ZCOUNT: the results' conversion-over-time plot. Two joins are kept
order-independent, because exposures, impressions and clicks come from different topics and may
be handled in any order:

- conversion (unit join): a unit converts in the variation it was exposed to when it clicks a
  recommendation at or after its first exposure. The unit's hash keeps its first exposure per
  experiment and its latest click, so whichever event arrives second completes the join. The
  conversion time is that click's; when clicks were handled before the exposure, the latest of
  them stands in (only it is kept), so a conversion may be dated late, never before exposure.
- clicks (request join): a click counts for the experiment and variation of the impression with
  the same request id. The request's hash keeps the impression's experiment and variation and
  the ids of the clicks seen, so a click handled before its impression is counted when the
  impression arrives.

Layout (spec in docs/recs-features-online.md): E experiment, V variation, U unit, R request id.

    <ns>:exp_variations:{E}       set of V
    <ns>:exp_exposures:{E}:<V>    zset U -> first exposure ms
    <ns>:exp_conversions:{E}:<V>  zset U -> conversion ms
    <ns>:exp_impressions:{E}:<V>  set of R         <ns>:exp_clicks:{E}:<V>      set of click ids
    <ns>:exp_empty:{E}:<V>        set of R (lists served empty)
    <ns>:exp_latency:{E}:<V>      zset R -> the request's processing time, ms (as answered)
    <ns>:exp_unit:{U}             hash: exp:<E> -> "<first exposure ms>|<V>", last_click -> ms
    <ns>:rec_request:{R}          hash: experiment, variation, click:<click id> -> 1
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from services.common.features.definitions import entity_tag
from services.common.redis_client import RedisClient
from services.common.redis_scripts import (
    Command,
    LuaScript,
    run_pipeline,
    unavailable_as_domain_error,
)
from services.designs.experiments.tallies import (
    LATENCY_QUANTILE,
    Quantile,
    Timeline,
    VariationCounts,
    quantile_ranks,
)

EXPERIMENT_TTL = timedelta(days=90)  # restarted by every write: results outlive the experiment
UNIT_TTL = timedelta(days=90)
REQUEST_TTL = timedelta(days=1)      # a click more than a day after its list is not attributed
_MS = timedelta(milliseconds=1)
NO_EXPERIMENT = ""                   # an impression served outside any experiment


def variations_key(experiment: str, namespace: str = "fs") -> str:
    return f"{namespace}:exp_variations:{entity_tag(experiment)}"


def variation_key(kind: str, experiment: str, variation: str, namespace: str = "fs") -> str:
    """kind: exposures, conversions, latency (sorted sets), impressions, clicks or empty (sets).
    The variation follows the hash tag, so all of an experiment's keys share one slot."""
    return f"{namespace}:exp_{kind}:{entity_tag(experiment)}:{variation}"


def unit_key(unit_id: str, namespace: str = "fs") -> str:
    return f"{namespace}:exp_unit:{entity_tag(unit_id)}"


def request_key(request_id: str, namespace: str = "fs") -> str:
    return f"{namespace}:rec_request:{entity_tag(request_id)}"


# KEYS[1] unit hash; ARGV[1] experiment, ARGV[2] exposure ms, ARGV[3] variation, ARGV[4] TTL ms.
# Keeps the earliest exposure time and the first variation recorded; returns {variation,
# first exposure ms, the unit's latest click ms if at or after that exposure, else -1}.
UNIT_EXPOSED = LuaScript("""
local field = 'exp:' .. ARGV[1]
local first, variation = tonumber(ARGV[2]), ARGV[3]
local stored = redis.call('HGET', KEYS[1], field)
if stored then
  local bar = string.find(stored, '|', 1, true)
  first = math.min(first, tonumber(string.sub(stored, 1, bar - 1)))
  variation = string.sub(stored, bar + 1)
end
redis.call('HSET', KEYS[1], field, string.format('%d|%s', first, variation))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[1], 'last_click') or '-1')
if last >= first then return {variation, first, last} end
return {variation, first, -1}
""")

# KEYS[1] unit hash; ARGV[1] click ms, ARGV[2] TTL ms. Keeps the latest click; returns
# {experiment, variation, ...} of every exposure at or before this click.
UNIT_CLICKED = LuaScript("""
local t = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'last_click') or '-1')
if t > last then redis.call('HSET', KEYS[1], 'last_click', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local joined = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 4) == 'exp:' then
    local bar = string.find(fields[i + 1], '|', 1, true)
    if tonumber(string.sub(fields[i + 1], 1, bar - 1)) <= t then
      table.insert(joined, string.sub(fields[i], 5))
      table.insert(joined, string.sub(fields[i + 1], bar + 1))
    end
  end
end
return joined
""")

# KEYS[1] request hash; ARGV[1] experiment ('' for none), ARGV[2] variation, ARGV[3] TTL ms.
# The first impression of a request decides; returns {experiment, variation, {click ids}}.
REQUEST_SHOWN = LuaScript("""
redis.call('HSETNX', KEYS[1], 'experiment', ARGV[1])
redis.call('HSETNX', KEYS[1], 'variation', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local clicks = {}
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(name, 1, 6) == 'click:' then table.insert(clicks, string.sub(name, 7)) end
end
return {redis.call('HGET', KEYS[1], 'experiment'), redis.call('HGET', KEYS[1], 'variation'),
        clicks}
""")

# KEYS[1] request hash; ARGV[1] click id, ARGV[2] TTL ms. Returns {experiment, variation}, both
# nil while the request's impression has not been seen.
REQUEST_CLICKED = LuaScript("""
redis.call('HSET', KEYS[1], 'click:' .. ARGV[1], '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'experiment', 'variation')
""")

SCRIPTS = (UNIT_EXPOSED, UNIT_CLICKED, REQUEST_SHOWN, REQUEST_CLICKED)


@dataclass(frozen=True)
class Exposure:
    experiment: str
    variation: str
    unit_id: str
    time_ms: int


@dataclass(frozen=True)
class Impression:
    request_id: str
    experiment: str | None
    variation: str | None
    empty: bool = False               # the list had no titles
    latency_ms: float | None = None   # None: not logged (an older recommender)


@dataclass(frozen=True)
class Click:
    click_id: str            # the event id: a click counts once however often it is delivered
    user_id: str             # the unit of recommendation experiments
    request_id: str | None   # None: the click cannot be attributed to a served list
    time_ms: int


@dataclass
class _Adds:
    """What the join replies decided: set members and timed members (the earliest time each),
    by (kind, experiment, variation)."""

    members: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    timed: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)
    latency: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def add(self, kind: str, experiment: str, variation: str, *members: str) -> None:
        if members:
            self.members.setdefault((kind, experiment, variation), set()).update(members)

    def add_timed(self, kind: str, experiment: str, variation: str, member: str,
                  ms: int) -> None:
        times = self.timed.setdefault((kind, experiment, variation), {})
        times[member] = min(ms, times.get(member, ms))

    def experiments(self) -> set[tuple[str, str]]:
        return {(e, v) for _, e, v in [*self.members, *self.timed]} | set(self.latency)


class RedisExperimentCounters:
    """Applies a batch of exposures, impressions and clicks in two round trips: the joins (Lua,
    one per unit or request) then the set additions they decide."""

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._client = client
        self._namespace = namespace

    def apply(self, exposures: Sequence[Exposure] = (), impressions: Sequence[Impression] = (),
              clicks: Sequence[Click] = ()) -> None:
        ns = self._namespace
        joins: list[Command] = []
        joins += [UNIT_EXPOSED.call([unit_key(e.unit_id, ns)], e.experiment, e.time_ms,
                                    e.variation, UNIT_TTL // _MS) for e in exposures]
        joins += [UNIT_CLICKED.call([unit_key(c.user_id, ns)], c.time_ms, UNIT_TTL // _MS)
                  for c in clicks]
        joins += [REQUEST_SHOWN.call([request_key(i.request_id, ns)],
                                     i.experiment or NO_EXPERIMENT, i.variation or "",
                                     REQUEST_TTL // _MS) for i in impressions]
        attributed = [(c, c.request_id) for c in clicks if c.request_id is not None]
        joins += [REQUEST_CLICKED.call([request_key(request_id, ns)], c.click_id,
                                       REQUEST_TTL // _MS) for c, request_id in attributed]
        if not joins:
            return
        replies = iter(run_pipeline(self._client, joins, SCRIPTS))
        adds = _Adds()
        for exposure in exposures:
            variation, first_ms, converted_ms = next(replies)
            _exposed(adds, exposure, _text(variation), int(first_ms), int(converted_ms))
        for click in clicks:
            joined = [_text(part) for part in next(replies)]
            for experiment, variation in zip(joined[::2], joined[1::2], strict=True):
                adds.add_timed("conversions", experiment, variation, click.user_id,
                               click.time_ms)
        for impression in impressions:
            experiment, variation, click_ids = next(replies)
            if _text(experiment) != NO_EXPERIMENT:
                _shown(adds, impression, _text(experiment), _text(variation),
                       [_text(c) for c in click_ids])
        for click, _ in attributed:
            experiment, variation = next(replies)
            if experiment is not None and _text(experiment) != NO_EXPERIMENT:
                adds.add("clicks", _text(experiment), _text(variation), click.click_id)
        run_pipeline(self._client, self._set_commands(adds))

    def _set_commands(self, adds: _Adds) -> list[Command]:
        ns, ttl_ms = self._namespace, EXPERIMENT_TTL // _MS
        commands: list[Command] = []
        for experiment, variation in sorted(adds.experiments()):
            commands += [("SADD", variations_key(experiment, ns), variation),
                         ("PEXPIRE", variations_key(experiment, ns), ttl_ms)]
        for (kind, experiment, variation), members in adds.members.items():
            key = variation_key(kind, experiment, variation, ns)
            commands += [("SADD", key, *sorted(members)), ("PEXPIRE", key, ttl_ms)]
        for (kind, experiment, variation), times in adds.timed.items():
            key = variation_key(kind, experiment, variation, ns)
            # LT: a member's score only ever goes down, to its earliest time (idempotent).
            pairs = [part for member in sorted(times) for part in (times[member], member)]
            commands += [("ZADD", key, "LT", *pairs), ("PEXPIRE", key, ttl_ms)]
        for (experiment, variation), latencies in adds.latency.items():
            key = variation_key("latency", experiment, variation, ns)
            scored: list[float | str] = [part for member in sorted(latencies)
                                         for part in (latencies[member], member)]
            commands += [("ZADD", key, "LT", *scored), ("PEXPIRE", key, ttl_ms)]
        return commands


def _exposed(adds: _Adds, exposure: Exposure, variation: str, first_ms: int,
             converted_ms: int) -> None:
    adds.add_timed("exposures", exposure.experiment, variation, exposure.unit_id, first_ms)
    if converted_ms >= 0:
        adds.add_timed("conversions", exposure.experiment, variation, exposure.unit_id,
                       converted_ms)


def _shown(adds: _Adds, impression: Impression, experiment: str, variation: str,
           click_ids: list[str]) -> None:
    request_id = impression.request_id
    adds.add("impressions", experiment, variation, request_id)
    adds.add("clicks", experiment, variation, *click_ids)
    if impression.empty:
        adds.add("empty", experiment, variation, request_id)
    if impression.latency_ms is not None:
        # One score per request: a redelivered impression carries the same time (LT keeps it).
        adds.latency.setdefault((experiment, variation), {})[request_id] = impression.latency_ms


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# VariationCounts' counted fields, in order: (key kind, command that counts it)
_COUNTED = (("exposures", "ZCARD"), ("conversions", "ZCARD"), ("impressions", "SCARD"),
            ("clicks", "SCARD"), ("empty", "SCARD"))


def experiment_variations(client: RedisClient, experiment: str,
                          namespace: str = "fs") -> list[str]:
    """The variations anything was counted for, sorted by name."""
    with unavailable_as_domain_error():
        members = client.smembers(variations_key(experiment, namespace))
    return sorted(_text(v) for v in members)


def experiment_counts(client: RedisClient, experiment: str,
                      namespace: str = "fs") -> dict[str, VariationCounts]:
    """{variation: counts} of one experiment, variations sorted by name; two round trips, and a
    third for the p99 latency when some variation logged latencies."""
    variations = experiment_variations(client, experiment, namespace)
    if not variations:
        return {}
    sizes = run_pipeline(client, [command for v in variations for command in (
        *((command, variation_key(kind, experiment, v, namespace))
          for kind, command in _COUNTED),
        ("ZCARD", variation_key("latency", experiment, v, namespace)))])
    counts = iter(int(n) for n in sizes)
    found, samples = {}, {}
    for v in variations:   # in the pipeline's order: the counted fields, then the latencies
        found[v] = VariationCounts(next(counts), next(counts), next(counts), next(counts),
                                   next(counts))
        samples[v] = next(counts)
    return _with_latency(client, experiment, found, samples, namespace)


def _with_latency(client: RedisClient, experiment: str, counts: dict[str, VariationCounts],
                  samples: dict[str, int], namespace: str) -> dict[str, VariationCounts]:
    """Each variation's p99 latency with its interval: three order statistics of the latency
    zset read by rank (one more round trip, only when some variation has samples)."""
    ranks = {v: quantile_ranks(n, LATENCY_QUANTILE) for v, n in samples.items() if n}
    if not ranks:
        return counts
    replies = iter(run_pipeline(client, [
        ("ZRANGE", variation_key("latency", experiment, v, namespace), rank, rank,
         "WITHSCORES") for v, chosen in ranks.items() for rank in chosen]))
    read = {}
    for v in ranks:
        # Each reply: [[member, score]]; a rank past the end (the set shrank by expiry) is [].
        low, value, high = (float(reply[0][1]) if reply else math.nan
                            for reply in (next(replies), next(replies), next(replies)))
        read[v] = Quantile(LATENCY_QUANTILE, samples[v], value, low, high)
    return {v: replace(c, latency=read.get(v)) for v, c in counts.items()}


def experiment_counts_until(client: RedisClient, experiment: str, until_ms: int,
                            namespace: str = "fs") -> dict[str, VariationCounts]:
    """experiment_counts as of `until_ms`: units exposed and converted by then (ZCOUNT of the
    time-scored sets); impressions and clicks are sets without times, counted whole. What a
    stopped test measured while it ran, before its units' later clicks (a unit converts on any
    click after its exposure, however late)."""
    variations = experiment_variations(client, experiment, namespace)
    if not variations:
        return {}
    replies = iter(int(n) for n in run_pipeline(client, [
        command for v in variations for command in (
            ("ZCOUNT", variation_key("exposures", experiment, v, namespace), "-inf", until_ms),
            ("ZCOUNT", variation_key("conversions", experiment, v, namespace), "-inf",
             until_ms),
            ("SCARD", variation_key("impressions", experiment, v, namespace)),
            ("SCARD", variation_key("clicks", experiment, v, namespace)),
            ("SCARD", variation_key("empty", experiment, v, namespace)))]))
    return {v: VariationCounts(next(replies), next(replies), next(replies), next(replies),
                               next(replies))
            for v in variations}


def experiment_timeline(client: RedisClient, experiment: str, points: int = 60,
                        namespace: str = "fs") -> Timeline:
    """`points` instants evenly spaced from the first exposure to the last exposure or
    conversion; at each, ZCOUNT of both sorted sets up to it. Three round trips whatever the
    number of units (the bounds, then every ZCOUNT in one pipeline)."""
    variations = experiment_variations(client, experiment, namespace)
    keys = [(v, variation_key("exposures", experiment, v, namespace),
             variation_key("conversions", experiment, v, namespace)) for v in variations]
    bounds = run_pipeline(client, [command for _, exposed, converted in keys for command in (
        ("ZRANGE", exposed, 0, 0, "WITHSCORES"), ("ZRANGE", exposed, -1, -1, "WITHSCORES"),
        ("ZRANGE", converted, -1, -1, "WITHSCORES"))])
    # Each reply: [] for an empty set, else [[member, score]].
    first = [int(reply[0][1]) for reply in bounds[0::3] if reply]
    last = [int(reply[0][1]) for reply in bounds if reply]
    if not first:
        return Timeline((), {v: () for v in variations}, {v: () for v in variations})
    start, end = min(first), max(last)
    steps = max(points - 1, 1)
    times = sorted({start + (end - start) * i // steps for i in range(steps + 1)})
    counts = iter(int(n) for n in run_pipeline(client, [
        ("ZCOUNT", key, "-inf", t) for _, exposed, converted in keys
        for key in (exposed, converted) for t in times]))
    exposed_at: dict[str, tuple[int, ...]] = {}
    converted_at: dict[str, tuple[int, ...]] = {}
    for variation, _, _ in keys:
        exposed_at[variation] = tuple(next(counts) for _ in times)
        converted_at[variation] = tuple(next(counts) for _ in times)
    return Timeline(tuple(times), exposed_at, converted_at)
