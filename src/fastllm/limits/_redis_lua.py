"""The Lua scripts of the shared rate limiter (see :mod:`fastllm.limits.redis_limiter`).

A limit named ``N`` lives in three keys: the hash ``{prefix}:N`` with fields ``r`` and
``t`` (requests and tokens levels) and ``ts`` (the Redis time they were computed at),
the sorted set ``{prefix}:N:workers`` (worker id -> last time seen) and the string
``{prefix}:N:cooldown`` (exists while a cooldown holds). A missing hash is a full
bucket, so the hash expires once it would be full again. Levels are refilled by the
time elapsed on Redis' own clock (``TIME``), so the processes' clocks never matter.
Numbers travel as ``%.17g`` strings: Lua numbers returned to Redis become integers.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "ADJUST"]

_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function f(x) return string.format('%.17g', x) end
local function level(key, cr, ct, per)
  local s = redis.call('HMGET', key, 'r', 't', 'ts')
  local dt = math.max(0, now - (tonumber(s[3]) or now))
  return math.min(cr, (tonumber(s[1]) or cr) + dt * cr / per),
         math.min(ct, (tonumber(s[2]) or ct) + dt * ct / per)
end
local function store(key, r, t, cr, ct, per)
  local full = 0
  if cr > 0 then full = math.max(full, (cr - r) / cr) end
  if ct > 0 then full = math.max(full, (ct - t) / ct) end
  redis.call('HSET', key, 'r', f(r), 't', f(t), 'ts', f(now))
  redis.call('PEXPIRE', key, math.ceil(1000 * (full * per + 1)))
end
"""
# KEYS: per limit: bucket, workers, cooldown. ARGV: worker id, heartbeat seconds, n, per
# limit (requests, tokens, period; 0 = none), m, then the tokens of m waiters in order.
# Returns {granted, wait seconds, cooldown seconds, per limit: requests, tokens, workers}.
ACQUIRE = (
    _PRELUDE
    + """
local id, beat, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cr, ct, per, lr, lt, seen, cool = {}, {}, {}, {}, {}, {}, 0
for i = 1, n do
  local a, k = 3 * i + 1, 3 * i - 2
  cr[i], ct[i], per[i] = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  lr[i], lt[i] = level(KEYS[k], cr[i], ct[i], per[i])
  local left = redis.call('PTTL', KEYS[k + 2])
  if left > 0 then cool = math.max(cool, left / 1000) end
  redis.call('ZADD', KEYS[k + 1], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', now - beat)
  redis.call('PEXPIRE', KEYS[k + 1], math.ceil(beat * 1000))
  seen[i] = redis.call('ZCARD', KEYS[k + 1])
end
local granted, wait = 0, cool
if cool == 0 then
  for j = 1, tonumber(ARGV[3 * n + 4]) do
    local need = tonumber(ARGV[3 * n + 4 + j])
    for i = 1, n do
      if cr[i] > 0 and lr[i] < 1 - 1e-9 then wait = math.max(wait, (1 - lr[i]) * per[i] / cr[i]) end
      local want = math.min(need, ct[i])
      if ct[i] > 0 and lt[i] < want - 1e-9 then
        wait = math.max(wait, (want - lt[i]) * per[i] / ct[i])
      end
    end
    if wait > 0 then break end
    for i = 1, n do
      if cr[i] > 0 then lr[i] = lr[i] - 1 end
      if ct[i] > 0 then lt[i] = lt[i] - need end
    end
    granted = j
  end
  if granted > 0 then
    for i = 1, n do store(KEYS[3 * i - 2], lr[i], lt[i], cr[i], ct[i], per[i]) end
  end
end
local out = {granted, f(wait), f(cool)}
for i = 1, n do
  out[#out + 1] = f(lr[i]); out[#out + 1] = f(lt[i]); out[#out + 1] = seen[i]
end
return out
"""
)
# KEYS: per limit: bucket, cooldown. ARGV: n, per limit (requests, tokens, period), then
# requests delta, tokens delta (positive: give back), requests and tokens ceilings
# (-1: none), cooldown milliseconds (0: none).
ADJUST = (
    _PRELUDE
    + """
local n = tonumber(ARGV[1])
local dr, dt, mr, mt = tonumber(ARGV[3 * n + 2]), tonumber(ARGV[3 * n + 3]),
                       tonumber(ARGV[3 * n + 4]), tonumber(ARGV[3 * n + 5])
local ms = tonumber(ARGV[3 * n + 6])
for i = 1, n do
  local a = 3 * i - 1
  local cr, ct, per = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if dr ~= 0 or dt ~= 0 or mr >= 0 or mt >= 0 then
    local r, t = level(KEYS[2 * i - 1], cr, ct, per)
    r, t = math.min(cr, r + dr), math.min(ct, t + dt)
    if ct == 0 then t = 0 end
    if mr >= 0 and mr < r then r = mr end
    if mt >= 0 and mt < t then t = mt end
    store(KEYS[2 * i - 1], r, t, cr, ct, per)
  end
  if ms > 0 and redis.call('PTTL', KEYS[2 * i]) < ms then
    redis.call('SET', KEYS[2 * i], '1', 'PX', ms)
  end
end
return 1
"""
)
