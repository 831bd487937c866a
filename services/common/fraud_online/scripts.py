"""The Lua scripts that record a transaction in one entity's state and read it back, atomically.

One script call per entity: all of its keys share the entity's hash tag, so each call runs on
one Redis Cluster node, and it is atomic there (two requests for one card cannot both miss each
other). A transaction costs six calls (card, customer, terminal, merchant, device, IP) instead
of the ~30 plain commands it took to write members and read windows apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        """What EVALSHA names it by: SHA-1 of the source (Redis computes the same)."""
        return hashlib.sha1(self.source.encode()).hexdigest()


# KEYS[1] the log. ARGV: record, record size, trim cutoff (ms), records to keep however old,
# TTL (ms), how many newest records to check for this transaction, 1 to reply with the log.
# A record whose transaction digest (bytes 9-16) is among the newest `check` records is not
# appended again: a redelivery or a second writer lands soon after the first. Older duplicates
# are possible and harmless: readers count each digest once.
APPEND_LOG = Script("append_log", """
local key, record = KEYS[1], ARGV[1]
local size, cutoff, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local check = tonumber(ARGV[6])
local n = redis.call('STRLEN', key) / size
local digest = string.sub(record, 9, 16)
local seen = false
if n > 0 and check > 0 then
  local tail = redis.call('GETRANGE', key, math.max(n - check, 0) * size, -1)
  for at = 9, #tail, size do
    if string.sub(tail, at, at + 7) == digest then seen = true; break end
  end
end
if not seen then
  redis.call('APPEND', key, record)
  n = n + 1
end
-- Trim the head in steps of at least 16 records: one rewrite per ~16 appends, not per append.
local step = 16
if n - keep >= step then
  local probe = redis.call('GETRANGE', key, (step - 1) * size, (step - 1) * size + 7)
  if struct.unpack('<i8', probe) < cutoff then
    local limit = n - keep
    local head = redis.call('GETRANGE', key, 0, limit * size - 1)
    local drop = step
    local function at(i)
      return struct.unpack('<i8', string.sub(head, i * size + 1, i * size + 8))
    end
    while drop < limit and at(drop) < cutoff do drop = drop + 1 end
    redis.call('SET', key, redis.call('GETRANGE', key, drop * size, -1))
  end
end
redis.call('PEXPIRE', key, ARGV[5])
if ARGV[7] == '1' then return redis.call('GET', key) end
return n
""")

# KEYS[1] the entity's transactions, KEYS[2] its fraud reports (terminal or merchant).
# ARGV: transaction id, time (ms), trim cutoff, TTL, then optionally the reports' range
# (min, max) and count ranges (min, max)...: replies {reports WITHSCORES, count, count...}.
RECORD_ACTIVITY = Script("record_activity", """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if #ARGV < 6 then return {} end
local reply = {redis.call('ZRANGE', KEYS[2], ARGV[5], ARGV[6], 'BYSCORE', 'WITHSCORES')}
for i = 7, #ARGV, 2 do
  reply[#reply + 1] = redis.call('ZCOUNT', KEYS[1], ARGV[i], ARGV[i + 1])
end
return reply
""")

# KEYS[1] the cards seen on a device (or IP address), each scored by its last use.
# ARGV: card id, time (ms), trim cutoff, TTL, optionally the window's start (ms).
# Reads before it writes: {cards last seen in [start, time), this card's last use or nil}.
RECORD_LAST_SEEN = Script("record_last_seen", """
local reply = {}
if ARGV[5] then
  reply[1] = redis.call('ZCOUNT', KEYS[1], ARGV[5], '(' .. ARGV[2])
  reply[2] = redis.call('ZSCORE', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return reply
""")

SCRIPTS = (APPEND_LOG, RECORD_ACTIVITY, RECORD_LAST_SEEN)
