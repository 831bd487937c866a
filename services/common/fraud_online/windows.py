"""The customer's and the card's windows, summed where the members live: in Redis, by Lua.

A decision needs a few numbers from the card's and the customer's last 30 days (counts and sums
over a minute, an hour, a day, a week, 30 days; whether this device and IP were seen; the card's
newest earlier transaction). Reading the ~200 members they hold and summing them in Python cost
most of a decision (parsing the reply, building a tuple per member, the loops); the two scripts
below return the ~20 numbers instead, and the Python functions beside them say the same thing
in Python. `tests/integration/test_fraud_windows_redis.py` checks, for generated histories, that
the two give identical results (sums too, bit for bit: both add in time order, from zero).

Both run on one key each, so they work on Redis Cluster; members are decoded as layout.py wrote
them (ids escaped, amounts as Python repr, which Lua's tonumber reads back exactly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.common.catalog import SMALL_AMOUNT
from services.common.fraud_online.layout import (
    CARD_TX,
    CUSTOMER_TX,
    MS_DAY,
    MS_HOUR,
    MS_MINUTE,
    SEPARATOR,
    WINDOW_30D_MS,
)
from services.common.fraud_online.state import (
    CardUse,
    CardWindows,
    CustomerWindows,
    Place,
    Spend,
    TransactionLike,
)
from services.common.ids import escape, unescape
from services.common.recs_online.lua import Command, LuaScript

CUSTOMER_DAYS = (1, 7, 30)


def customer_windows(spends: Iterable[Spend], t: int, transaction_id: str) -> CustomerWindows:
    """The reference: CUSTOMER_WINDOWS in Python."""
    counts, sums = [0, 0, 0], [0.0, 0.0, 0.0]
    for spend in spends:
        if spend.transaction_id == transaction_id or not t - WINDOW_30D_MS <= spend.at_ms < t:
            continue
        for i, days in enumerate(CUSTOMER_DAYS):
            if spend.at_ms >= t - days * MS_DAY:
                counts[i] += 1
                sums[i] += spend.amount
    return CustomerWindows((counts[0], counts[1], counts[2]), (sums[0], sums[1], sums[2]))


def card_windows(uses: Iterable[CardUse], t: int, transaction_id: str, device_id: str,
                 ip_address: str) -> CardWindows:
    """The reference: CARD_WINDOWS in Python (uses in time order, as Redis returns them)."""
    n = {"1m": 0, "1h": 0, "small": 0, "24h": 0, "30d": 0}
    s = {"1m": 0.0, "1h": 0.0, "24h": 0.0, "30d": 0.0}
    device_seen = ip_seen = False
    newest: list[CardUse] = []
    for use in uses:
        at = use.at_ms
        if use.transaction_id == transaction_id or not t - WINDOW_30D_MS <= at < t:
            continue
        n["30d"] += 1
        s["30d"] += use.amount
        if at >= t - MS_DAY:
            n["24h"] += 1
            s["24h"] += use.amount
        if at >= t - MS_HOUR:
            n["1h"] += 1
            s["1h"] += use.amount
            n["small"] += use.amount < SMALL_AMOUNT
        if at >= t - MS_MINUTE:
            n["1m"] += 1
            s["1m"] += use.amount
        device_seen = device_seen or use.device_id == device_id
        ip_seen = ip_seen or use.ip_address == ip_address
        if not newest or at > newest[0].at_ms:
            newest = [use]
        elif at == newest[0].at_ms:
            newest.append(use)
    return CardWindows(n["1m"], s["1m"], n["1h"], s["1h"], n["small"], n["24h"], s["24h"],
                       n["30d"], s["30d"], device_seen, ip_seen,
                       tuple(Place(u.at_ms, u.transaction_id, u.latitude, u.longitude)
                             for u in newest))


_SPLIT = """
local function split(text)
  local fields, start = {}, 1
  while true do
    local bar = string.find(text, '|', start, true)
    if not bar then fields[#fields + 1] = string.sub(text, start); return fields end
    fields[#fields + 1] = string.sub(text, start, bar - 1)
    start = bar + 1
  end
end
local function exact(x) return string.format('%.17g', x) end
"""

# KEYS[1] the customer's transactions; ARGV[1] t (ms), ARGV[2] the escaped transaction id,
# ARGV[3] 30 days, ARGV[4] a day (ms). Returns {count, sum} for 1, 7 and 30 days; sums as text
# (a Lua number in a reply would be cut to an integer).
CUSTOMER_WINDOWS = LuaScript(_SPLIT + """
local t, day = tonumber(ARGV[1]), tonumber(ARGV[4])
local spends = redis.call('ZRANGE', KEYS[1], t - tonumber(ARGV[3]), '(' .. ARGV[1], 'BYSCORE',
                          'WITHSCORES')
local c1, s1, c7, s7, c30, s30 = 0, 0, 0, 0, 0, 0
for i = 1, #spends, 2 do
  local fields, at = split(spends[i]), tonumber(spends[i + 1])
  if fields[1] ~= ARGV[2] then
    local amount = tonumber(fields[2])
    c30, s30 = c30 + 1, s30 + amount
    if at >= t - 7 * day then c7, s7 = c7 + 1, s7 + amount end
    if at >= t - day then c1, s1 = c1 + 1, s1 + amount end
  end
end
return {c1, exact(s1), c7, exact(s7), c30, exact(s30)}
""")

# KEYS[1] the card's transactions; ARGV[1] t, ARGV[2] the escaped transaction id, ARGV[3] the
# escaped device id, ARGV[4] the IP, ARGV[5] the small amount, ARGV[6..9] 30 days, a day, an hour,
# a minute (ms). Returns {count 1m, sum 1m, count 1h, sum 1h, small 1h, count 24h, sum 24h,
# count 30d, sum 30d, device seen, ip seen, {members at the newest instant}, their score}.
CARD_WINDOWS = LuaScript(_SPLIT + """
local t, small = tonumber(ARGV[1]), tonumber(ARGV[5])
local day, hour, minute = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local uses = redis.call('ZRANGE', KEYS[1], t - tonumber(ARGV[6]), '(' .. ARGV[1], 'BYSCORE',
                        'WITHSCORES')
local n1m, s1m, n1h, s1h, small1h, n24, s24, n30, s30 = 0, 0, 0, 0, 0, 0, 0, 0, 0
local device, ip, newest, newest_at = 0, 0, {}, -1
for i = 1, #uses, 2 do
  local fields, at = split(uses[i]), tonumber(uses[i + 1])
  if fields[1] ~= ARGV[2] then
    local amount = tonumber(fields[2])
    n30, s30 = n30 + 1, s30 + amount
    if at >= t - day then n24, s24 = n24 + 1, s24 + amount end
    if at >= t - hour then
      n1h, s1h = n1h + 1, s1h + amount
      if amount < small then small1h = small1h + 1 end
    end
    if at >= t - minute then n1m, s1m = n1m + 1, s1m + amount end
    if fields[5] == ARGV[3] then device = 1 end
    if fields[6] == ARGV[4] then ip = 1 end
    if at > newest_at then newest, newest_at = {uses[i]}, at
    elseif at == newest_at then newest[#newest + 1] = uses[i] end
  end
end
return {n1m, exact(s1m), n1h, exact(s1h), small1h, n24, exact(s24), n30, exact(s30), device, ip,
        newest, exact(newest_at)}
""")

SCRIPTS = (CUSTOMER_WINDOWS, CARD_WINDOWS)


def customer_command(namespace: str, txn: TransactionLike, t: int) -> Command:
    return CUSTOMER_WINDOWS.call([CUSTOMER_TX.key(namespace, txn.user_id)], t,
                                 escape(txn.transaction_id), WINDOW_30D_MS, MS_DAY)


def card_command(namespace: str, txn: TransactionLike, t: int) -> Command:
    return CARD_WINDOWS.call([CARD_TX.key(namespace, txn.card_id)], t,
                             escape(txn.transaction_id), escape(txn.device_id),
                             str(txn.ip_address), repr(float(SMALL_AMOUNT)), WINDOW_30D_MS,
                             MS_DAY, MS_HOUR, MS_MINUTE)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_customer(reply: Sequence[Any]) -> CustomerWindows:
    c1, s1, c7, s7, c30, s30 = reply
    return CustomerWindows((int(c1), int(c7), int(c30)),
                           (float(_text(s1)), float(_text(s7)), float(_text(s30))))


def decode_card(reply: Sequence[Any]) -> CardWindows:
    (n1m, s1m, n1h, s1h, small1h, n24, s24, n30, s30, device, ip, newest, newest_at) = reply
    at = int(float(_text(newest_at)))
    places = []
    for member in newest:
        tid, _, latitude, longitude, _, _ = _text(member).split(SEPARATOR)
        places.append(Place(at, unescape(tid), float(latitude), float(longitude)))
    return CardWindows(int(n1m), float(_text(s1m)), int(n1h), float(_text(s1h)), int(small1h),
                       int(n24), float(_text(s24)), int(n30), float(_text(s30)),
                       bool(int(device)), bool(int(ip)), tuple(places))
