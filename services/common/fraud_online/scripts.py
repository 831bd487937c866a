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
# TTL (ms), 1 to reply with the log. A record whose transaction digest (bytes 9-16) is in the
# log already is not appended again (a plain find, checked to sit at a record's digest field),
# so a transaction is in its card's and customer's logs once, however often it is recorded:
# readers need not deduplicate. Returns the log as it is after the call, or its record count.
APPEND_LOG = Script("append_log", """
local key, record = KEYS[1], ARGV[1]
local size, cutoff, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local log = redis.call('GET', key) or ''
local digest = string.sub(record, 9, 16)
local seen, from = false, 1
while true do
  local at = string.find(log, digest, from, true)
  if not at then break end
  if (at - 9) % size == 0 then seen = true; break end
  from = at + 1
end
if not seen then
  redis.call('APPEND', key, record)
  log = log .. record
end
-- Trim the head in steps of at least 16 records: one rewrite per ~16 appends, not per append.
local n, step = #log / size, 16
local function at_ms(i)
  return struct.unpack('<i8', string.sub(log, i * size + 1, i * size + 8))
end
if n - keep >= step and at_ms(step - 1) < cutoff then
  local drop = step
  while drop < n - keep and at_ms(drop) < cutoff do drop = drop + 1 end
  log = string.sub(log, drop * size + 1)
  redis.call('SET', key, log)
end
redis.call('PEXPIRE', key, ARGV[5])
if ARGV[6] == '1' then return log end
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
