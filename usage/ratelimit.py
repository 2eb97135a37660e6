"""Rate-limit windows in Redis (used when REDIS_URL is set): one Lua script counts the request in
every scope's current minute and undoes it everywhere if any limit is exceeded."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import redis
from django.conf import settings

from gateway.errors import RateLimited

# KEYS: per scope, a requests key then a tokens key. ARGV[1] tokens; then per scope rpm, tpm
# (-1 = none). Returns 0 when admitted, else the 1-based index of the scope over its limit,
# negated for a token limit.
_SCRIPT = """
local tokens = tonumber(ARGV[1])
local n = #KEYS / 2
local over = 0
for i = 1, n do
  local r = redis.call('INCR', KEYS[2*i-1])
  local t = redis.call('INCRBY', KEYS[2*i], tokens)
  redis.call('EXPIRE', KEYS[2*i-1], 120)
  redis.call('EXPIRE', KEYS[2*i], 120)
  local rpm = tonumber(ARGV[2*i])
  local tpm = tonumber(ARGV[2*i+1])
  if over == 0 and rpm >= 0 and r > rpm then over = i end
  if over == 0 and tpm >= 0 and t > tpm then over = -i end
end
if over ~= 0 then
  for i = 1, n do
    redis.call('DECR', KEYS[2*i-1])
    redis.call('DECRBY', KEYS[2*i], tokens)
  end
end
return over
"""

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


def check_rates_redis(schema: str, specs, tokens: int, now: datetime) -> None:
    by_scope: dict[str, dict[str, Decimal]] = {}
    for spec in specs:
        if spec.metric in ("requests_per_minute", "tokens_per_minute"):
            by_scope.setdefault(spec.scope_key, {})[spec.metric] = spec.hard
    if not by_scope:
        return
    minute = now.strftime("%Y%m%d%H%M")
    keys, args = [], [tokens]
    scopes = list(by_scope)
    for scope_key in scopes:
        base = f"switchboard:rate:{schema}:{scope_key}:{minute}"
        keys += [base + ":r", base + ":t"]
        limits = by_scope[scope_key]
        args += [
            int(limits.get("requests_per_minute", -1)),
            int(limits.get("tokens_per_minute", -1)),
        ]
    over = int(_redis().eval(_SCRIPT, len(keys), *keys, *args))
    if over:
        scope_key = scopes[abs(over) - 1]
        metric = "requests_per_minute" if over > 0 else "tokens_per_minute"
        raise RateLimited(
            f"Rate limit reached: {int(by_scope[scope_key][metric])} "
            f"{metric.replace('_per_minute', '')} per minute for {scope_key}.",
            param=f"{scope_key}.{metric}",
            retry_after=max(1, 60 - now.second),
        )
