"""The Lua scripts that record a transaction in one entity's state and read it back, atomically.

One script call per entity: all of its keys share the entity's hash tag, so each call runs on
one Redis Cluster node, and it is atomic there (two requests for one card cannot both miss each
other). A transaction costs six calls (card, customer, terminal, merchant, device, IP) instead
of the ~38 plain commands it took to write members and read windows apart.

Each view has its own script, its constants (record size, retention, TTL, windows) written into
the source: a call sends only what varies, the transaction's fields and whether to reply (the
client's cost of a call is mostly packing its arguments).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product

from services.designs.fraud.layout import (
    CARD_LOG,
    CUSTOMER_LOG,
    DELAY_MS,
    DEVICE_CARDS,
    IP_CARDS,
    MERCHANT_TX,
    MS_DAY,
    TERMINAL_TX,
    TERMINAL_WINDOW_DAYS,
    WINDOW_30D_MS,
    LogView,
    StateView,
)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    keys: int  # keys per entity
    args: int  # arguments per entity
    sha: str = field(init=False)  # what EVALSHA names it by: SHA-1 of the source, as Redis has it

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Runs a view's script for several entities in one call, in order (so a card used twice in a
# batch sees its first use), and replies with their replies in that order. Redis's cost of a
# call (parsing it, entering Lua, the reply's header) is then paid once for many entities, and
# the client packs one command instead of hundreds. KEYS and ARGV are the entities' own, laid
# end to end, NKEYS and NARGS of each: the body reads its entity's n-th key as KEYS[k + n] and
# its n-th argument as ARGV[a + n] (for_each writes them so from KEYS[n] and ARGV[n]), rather
# than each entity's being copied into tables of its own: a table an entity cost Redis about 7 %
# of a transaction's time (measured side by side, docs/fraud.md).
_FOR_EACH = """
local function one(k, a)
BODY
end
local out = {}
for i = 0, #KEYS / NKEYS - 1 do
  out[i + 1] = one(i * NKEYS, i * NARGS)
end
return out
"""
_NTH = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")


def for_each(name: str, body: str, keys: int, args: int, constants: str = "") -> Script:
    """A script whose `body` does one entity's work (its KEYS[1..keys], ARGV[1..args]) and
    returns its reply, run for every entity a call names."""
    loop = _FOR_EACH.replace("NKEYS", str(keys)).replace("NARGS", str(args))
    own = _NTH.sub(lambda m: f"{m[1]}[{'k' if m[1] == 'KEYS' else 'a'} + {m[2]}]",
                   body.strip("\n"))
    return Script(name, constants + loop.replace("BODY", own), keys, args)


def _constants(**values: int | Sequence[int]) -> str:
    lines = [f"local {name} = {{{', '.join(map(str, value))}}}" if not isinstance(value, int)
             else f"local {name} = {value}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


# KEYS[1] the log. ARGV: the record; flags (`flags()`: reply, append: 0 when the copy holds the
# transaction already, refresh the TTL); then what the client holds of the log
# (services/designs/fraud/copies.py): its copy's last record ('' for none), the copy's length,
# the bytes to trim from the head (computed from the copy as below).
#
# The client's copy is checked, not trusted: the log from (its length - SIZE) on must be exactly
# its last record, so the log is the copy (same length, same newest record; every other writer
# appends, and a trim drops at least 16 records). Then the call appends, trims and refreshes as
# told, touching only SIZE bytes, and replies with the new length. Otherwise (no copy, someone
# else wrote, the key expired) the whole log is read: a record whose transaction digest (bytes
# 9-16) is in the log already is not appended again (a plain find, checked to sit at a record's
# digest field), so a transaction is in its card's and customer's logs once, however often it
# is recorded: readers need not deduplicate. The head is trimmed of records older than (this
# record's time - RETENTION), in steps of at least 16 records (one rewrite per ~16 appends),
# never below the newest KEEP. Replies with the log as it is after the call, or its length.
# Moving a log into Lua costs Redis about a microsecond a kilobyte: the checked copy spares it.
_APPEND_LOG = """
local key, record, flags = KEYS[1], ARGV[1], ARGV[2]
if ARGV[3] ~= '' then
  local at = tonumber(ARGV[4])
  if redis.call('GETRANGE', key, at - SIZE, -1) == ARGV[3] then
    local n = at
    if string.byte(flags, 2) == 49 then n = redis.call('APPEND', key, record) end
    local drop = tonumber(ARGV[5])
    if drop > 0 then
      redis.call('SET', key, redis.call('GETRANGE', key, drop, -1), 'KEEPTTL')
      n = n - drop
    end
    if string.byte(flags, 3) == 49 then redis.call('PEXPIRE', key, TTL) end
    return n
  end
end
local cutoff = struct.unpack('<i8', string.sub(record, 1, 8)) - RETENTION
local log = redis.call('GET', key) or ''
local digest = string.sub(record, 9, 16)
local seen, from = false, 1
while true do
  local at = string.find(log, digest, from, true)
  if not at then break end
  if (at - 9) % SIZE == 0 then seen = true; break end
  from = at + 1
end
if not seen then
  redis.call('APPEND', key, record)
  log = log .. record
end
local n, step = #log / SIZE, 16
local function at_ms(i)
  return struct.unpack('<i8', string.sub(log, i * SIZE + 1, i * SIZE + 8))
end
if n - KEEP >= step and at_ms(step - 1) < cutoff then
  local drop = step
  while drop < n - KEEP and at_ms(drop) < cutoff do drop = drop + 1 end
  log = string.sub(log, drop * SIZE + 1)
  redis.call('SET', key, log)
end
redis.call('PEXPIRE', key, TTL)
if string.byte(flags, 1) == 49 then return log end
return #log
"""
LOG_STEP = 16  # the fewest records a trim drops (the scripts' `step`)


def flags(*on: bool | int) -> str:
    """Several yes/no arguments as one, '1' or '0' each in order (a script reads the k-th with
    `string.byte(flags, k) == 49`): each argument costs the client packing it and Redis a Lua
    string, about what a flag's work costs. Up to three 0/1 values are looked up (a scorer
    builds six a transaction), others built."""
    known = _FLAGS.get(on)
    return known if known is not None else "".join(["1" if bit else "0" for bit in on])


# (True, 0, 1) finds (1, 0, 1): True == 1 and hashes alike
_FLAGS = {bits: "".join(map(str, bits)) for n in (1, 2, 3) for bits in product((0, 1), repeat=n)}

TRIM_EVERY = 8  # of the calls that record in a sorted set, the share that also trims it

# The sorted sets are trimmed of members older than (t - RETENTION) by one call in TRIM_EVERY
# (its trim flag set, chosen by the client from the transaction id), not by every call: every
# read is bounded by score (a stale member is outside each window, and a last use older than
# RETENTION reads as none), so what is read is the same; a set holds a few stale members more.
# The refresh flag refreshes the TTL: the client asks for it once an hour per key at most
# (copies.StateCopies), a PEXPIRE costing Redis about what the ZADD does.

# KEYS[1] the entity's transactions, KEYS[2] its fraud reports (terminal or merchant).
# ARGV: transaction id, time t (ms), flags (reply, trim, refresh). Reply: {reports of
# transactions in [t - DELAY - 30 d, t - DELAY) WITHSCORES, then per COUNT_DAYS d the
# transactions in [t - DELAY - d, t - DELAY)}.
_RECORD_ACTIVITY = """
local member, t, flags = ARGV[1], tonumber(ARGV[2]), ARGV[3]
redis.call('ZADD', KEYS[1], ARGV[2], member)
if string.byte(flags, 2) == 49 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', t - RETENTION))
end
if string.byte(flags, 3) == 49 then redis.call('PEXPIRE', KEYS[1], TTL) end
if string.byte(flags, 1) ~= 49 then return {} end
local delayed_end = '(' .. string.format('%d', t - DELAY)
local reply = {redis.call('ZRANGE', KEYS[2], string.format('%d', t - DELAY - WINDOW),
                          delayed_end, 'BYSCORE', 'WITHSCORES')}
for _, days in ipairs(COUNT_DAYS) do
  reply[#reply + 1] = redis.call('ZCOUNT', KEYS[1], string.format('%d', t - DELAY - days * DAY),
                                 delayed_end)
end
return reply
"""

# KEYS[1] the cards seen on a device (or IP address), each scored by its last use. ARGV: card
# id, time t (ms), flags (reply, trim, refresh). Reads before it writes: {cards last seen in
# [t - WINDOW, t), this card's last use (nil if none since t - RETENTION)}.
_RECORD_LAST_SEEN = """
local member, t, flags = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local reply = {}
if string.byte(flags, 1) == 49 then
  reply[1] = redis.call('ZCOUNT', KEYS[1], string.format('%d', t - WINDOW), '(' .. ARGV[2])
  local last = redis.call('ZSCORE', KEYS[1], member)
  if last and tonumber(last) < t - RETENTION then last = false end
  reply[2] = last
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], member)
if string.byte(flags, 2) == 49 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', t - RETENTION))
end
if string.byte(flags, 3) == 49 then redis.call('PEXPIRE', KEYS[1], TTL) end
return reply
"""


def append_log(view: LogView) -> Script:
    return for_each(f"append_{view.name}", constants=_constants(
        SIZE=view.record.itemsize, KEEP=view.keep_newest, RETENTION=view.retention_ms,
        TTL=view.ttl_ms), body=_APPEND_LOG, keys=1, args=5)


def record_activity(view: StateView, count_days: Sequence[int]) -> Script:
    return for_each(f"record_{view.name}", constants=_constants(
        RETENTION=view.retention_ms, TTL=view.ttl_ms, DELAY=DELAY_MS, WINDOW=WINDOW_30D_MS,
        DAY=MS_DAY, COUNT_DAYS=count_days), body=_RECORD_ACTIVITY, keys=2, args=3)


def record_last_seen(view: StateView) -> Script:
    return for_each(f"record_{view.name}", constants=_constants(
        RETENTION=view.retention_ms, TTL=view.ttl_ms, WINDOW=WINDOW_30D_MS),
        body=_RECORD_LAST_SEEN, keys=1, args=3)


APPEND_CARD = append_log(CARD_LOG)
APPEND_CUSTOMER = append_log(CUSTOMER_LOG)
RECORD_TERMINAL = record_activity(TERMINAL_TX, TERMINAL_WINDOW_DAYS)
RECORD_MERCHANT = record_activity(MERCHANT_TX, (30,))
RECORD_DEVICE = record_last_seen(DEVICE_CARDS)
RECORD_IP = record_last_seen(IP_CARDS)
SCRIPTS = (APPEND_CARD, APPEND_CUSTOMER, RECORD_TERMINAL, RECORD_MERCHANT, RECORD_DEVICE,
           RECORD_IP)
