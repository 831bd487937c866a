"""A/B counters per experiment variation on Redis: exposed and converted units, impressions, clicks.

Every count is the size of a set (units, request ids, click event ids), so writing the same event
twice changes nothing, whatever the consumer's dedupe did. Two joins are kept order-independent,
because exposures, impressions and clicks come from different topics and may be handled in any
order:

- conversion (unit join): a unit converts in the variation it was exposed to when it clicks a
  recommendation at or after its first exposure. The unit's hash keeps its first exposure per
  experiment and its latest click, so whichever event arrives second completes the join.
- clicks (request join): a click counts for the experiment and variation of the impression with
  the same request id. The request's hash keeps the impression's experiment and variation and
  the ids of the clicks seen, so a click handled before its impression is counted when the
  impression arrives.

Layout (spec in docs/recs-features-online.md): E experiment, V variation, U unit, R request id.

    <ns>:exp_variations:{E}       set of V
    <ns>:exp_exposed:{E}:<V>      set of U         <ns>:exp_converted:{E}:<V>   set of U
    <ns>:exp_impressions:{E}:<V>  set of R         <ns>:exp_clicks:{E}:<V>      set of click ids
    <ns>:exp_unit:{U}             hash: exp:<E> -> "<first exposure ms>|<V>", last_click -> ms
    <ns>:rec_request:{R}          hash: experiment, variation, click:<click id> -> 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.common.features.definitions import check_entity_id
from services.common.recs_online.lua import Command, LuaScript, RedisClient, run_pipeline

EXPERIMENT_TTL = timedelta(days=90)  # restarted by every write: results outlive the experiment
UNIT_TTL = timedelta(days=90)
REQUEST_TTL = timedelta(days=1)      # a click more than a day after its list is not attributed
_MS = timedelta(milliseconds=1)
NO_EXPERIMENT = ""                   # an impression served outside any experiment


def _tag(entity_id: str) -> str:
    return f"{{{check_entity_id(entity_id)}}}"


def variations_key(experiment: str, namespace: str = "fs") -> str:
    return f"{namespace}:exp_variations:{_tag(experiment)}"


def variation_key(kind: str, experiment: str, variation: str, namespace: str = "fs") -> str:
    """kind: exposed, converted, impressions or clicks. The variation follows the hash tag, so
    all of an experiment's keys share one slot."""
    return f"{namespace}:exp_{kind}:{_tag(experiment)}:{variation}"


def unit_key(unit_id: str, namespace: str = "fs") -> str:
    return f"{namespace}:exp_unit:{_tag(unit_id)}"


def request_key(request_id: str, namespace: str = "fs") -> str:
    return f"{namespace}:rec_request:{_tag(request_id)}"


# KEYS[1] unit hash; ARGV[1] experiment, ARGV[2] exposure ms, ARGV[3] variation, ARGV[4] TTL ms.
# Keeps the earliest exposure time and the first variation recorded; returns {variation,
# 1 if the unit's latest click is at or after that exposure}.
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
if last >= first then return {variation, 1} end
return {variation, 0}
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


@dataclass(frozen=True)
class Click:
    click_id: str            # the event id: a click counts once however often it is delivered
    user_id: str             # the unit of recommendation experiments
    request_id: str | None   # None: the click cannot be attributed to a served list
    time_ms: int


@dataclass
class _Adds:
    """Set additions collected from the join replies: (kind, experiment, variation) -> members."""

    members: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)

    def add(self, kind: str, experiment: str, variation: str, *members: str) -> None:
        if members:
            self.members.setdefault((kind, experiment, variation), set()).update(members)


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
            variation, converted = next(replies)
            _exposed(adds, exposure, _text(variation), bool(converted))
        for click in clicks:
            joined = [_text(part) for part in next(replies)]
            for experiment, variation in zip(joined[::2], joined[1::2], strict=True):
                adds.add("converted", experiment, variation, click.user_id)
        for impression in impressions:
            experiment, variation, click_ids = next(replies)
            if _text(experiment) != NO_EXPERIMENT:
                adds.add("impressions", _text(experiment), _text(variation),
                         impression.request_id)
                adds.add("clicks", _text(experiment), _text(variation),
                         *(_text(c) for c in click_ids))
        for click, _ in attributed:
            experiment, variation = next(replies)
            if experiment is not None and _text(experiment) != NO_EXPERIMENT:
                adds.add("clicks", _text(experiment), _text(variation), click.click_id)
        run_pipeline(self._client, self._set_commands(adds))

    def _set_commands(self, adds: _Adds) -> list[Command]:
        ns, ttl_ms = self._namespace, EXPERIMENT_TTL // _MS
        commands: list[Command] = []
        for experiment, variation in sorted({(e, v) for _, e, v in adds.members}):
            commands += [("SADD", variations_key(experiment, ns), variation),
                         ("PEXPIRE", variations_key(experiment, ns), ttl_ms)]
        for (kind, experiment, variation), members in adds.members.items():
            key = variation_key(kind, experiment, variation, ns)
            commands += [("SADD", key, *sorted(members)), ("PEXPIRE", key, ttl_ms)]
        return commands


def _exposed(adds: _Adds, exposure: Exposure, variation: str, converted: bool) -> None:
    adds.add("exposed", exposure.experiment, variation, exposure.unit_id)
    if converted:
        adds.add("converted", exposure.experiment, variation, exposure.unit_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class VariationCounts:
    exposed: int      # distinct units bucketed into the variation
    converted: int    # of those, units that clicked a recommendation at or after exposure
    impressions: int  # recommendation lists (request ids) served under the variation
    clicks: int       # clicks on those lists


def experiment_counts(client: RedisClient, experiment: str,
                      namespace: str = "fs") -> dict[str, VariationCounts]:
    """{variation: counts} of one experiment, variations sorted by name; two round trips."""
    variations = sorted(_text(v) for v in client.smembers(variations_key(experiment, namespace)))
    if not variations:
        return {}
    kinds = ("exposed", "converted", "impressions", "clicks")
    sizes = run_pipeline(client, [("SCARD", variation_key(kind, experiment, v, namespace))
                                  for v in variations for kind in kinds])
    counts = iter(int(n) for n in sizes)
    return {v: VariationCounts(**{kind: next(counts) for kind in kinds}) for v in variations}
