"""Rate limits (requests and tokens per minute) in fixed one-minute windows.

The windows live in PostgreSQL (``RateWindow``, counted by the admission statement itself) or,
when ``REDIS_URL`` is set, in Redis, where one Lua script counts the request in every scope's
current minute and undoes it everywhere if any limit is exceeded. Either way a refused request
is not counted, and ``Retry-After`` is the number of seconds until the current window ends.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import redis
from django.conf import settings

from gateway.errors import RateLimited
from usage.limits import PER_MINUTE, LimitSpec
from usage.models import Limit

WINDOW = timedelta(minutes=1)

# Requests and tokens counted in the current window, per scope key.
Counts = dict[str, tuple[int, int]]


def window_start(now: datetime) -> datetime:
    """Start of the one-minute window ``now`` falls in."""
    return now.replace(second=0, microsecond=0)


def seconds_until_reset(now: datetime) -> int:
    """Whole seconds (at least 1) until the window ``now`` falls in ends."""
    remaining = (window_start(now) + WINDOW - now).total_seconds()
    return max(1, math.ceil(remaining))


def rate_refusal(specs: list[LimitSpec], counts: Counts, now: datetime) -> RateLimited | None:
    """The first rate limit that ``counts`` (which include this request) exceed, if any."""
    for spec in specs:
        if spec.metric not in PER_MINUTE or spec.scope_key not in counts:
            continue
        requests, tokens = counts[spec.scope_key]
        is_requests = spec.metric == Limit.Metric.REQUESTS_PER_MINUTE
        if (requests if is_requests else tokens) > spec.hard:
            return _refused(spec, now)
    return None


def _refused(spec: LimitSpec, now: datetime) -> RateLimited:
    unit = "requests" if spec.metric == Limit.Metric.REQUESTS_PER_MINUTE else "tokens"
    return RateLimited(
        f"Rate limit reached: {int(spec.hard)} {unit} per minute for {spec.scope_key}. "
        f"Retry after {seconds_until_reset(now)} s.",
        param=spec.label,
        retry_after=seconds_until_reset(now),
    )


def rate_headers(specs: list[LimitSpec], counts: Counts, now: datetime) -> dict[str, str]:
    """OpenAI's ``X-RateLimit-*`` headers for the tightest requests and tokens limits."""
    headers: dict[str, str] = {}
    reset = f"{seconds_until_reset(now)}s"
    for metric, suffix, index in (
        (Limit.Metric.REQUESTS_PER_MINUTE, "Requests", 0),
        (Limit.Metric.TOKENS_PER_MINUTE, "Tokens", 1),
    ):
        tightest = None
        for spec in specs:
            if spec.metric != metric or spec.scope_key not in counts:
                continue
            remaining = max(0, int(spec.hard) - counts[spec.scope_key][index])
            if tightest is None or remaining < tightest[1]:
                tightest = (spec, remaining)
        if tightest is not None:
            headers[f"X-RateLimit-Limit-{suffix}"] = str(int(tightest[0].hard))
            headers[f"X-RateLimit-Remaining-{suffix}"] = str(tightest[1])
            headers[f"X-RateLimit-Reset-{suffix}"] = reset
    return headers


# --- Redis backend ------------------------------------------------------------------------------

# KEYS: per scope, a requests key then a tokens key. ARGV[1] tokens; then per scope rpm, tpm
# (-1 = none). Returns {over, requests_1, tokens_1, requests_2, …}: over is 0 when admitted,
# else the 1-based index of the first scope over its limit, negated for a token limit; the
# counts are those after this request (before the undo, on a refusal).
_COUNT_SCRIPT = """
local tokens = tonumber(ARGV[1])
local n = #KEYS / 2
local over = 0
local result = {0}
for i = 1, n do
  local r = redis.call('INCR', KEYS[2*i-1])
  local t = redis.call('INCRBY', KEYS[2*i], tokens)
  redis.call('EXPIRE', KEYS[2*i-1], 120)
  redis.call('EXPIRE', KEYS[2*i], 120)
  local rpm = tonumber(ARGV[2*i])
  local tpm = tonumber(ARGV[2*i+1])
  if over == 0 and rpm >= 0 and r > rpm then over = i end
  if over == 0 and tpm >= 0 and t > tpm then over = -i end
  result[2*i] = r
  result[2*i+1] = t
end
if over ~= 0 then
  for i = 1, n do
    redis.call('DECR', KEYS[2*i-1])
    redis.call('DECRBY', KEYS[2*i], tokens)
  end
end
result[1] = over
return result
"""

_UNCOUNT_SCRIPT = """
for i = 1, #KEYS / 2 do
  redis.call('DECR', KEYS[2*i-1])
  redis.call('DECRBY', KEYS[2*i], tonumber(ARGV[1]))
end
return 0
"""

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    return _client


def _key(schema: str, scope_key: str, now: datetime) -> str:
    return f"switchboard:rate:{schema}:{scope_key}:{now.strftime('%Y%m%d%H%M')}"


def _by_scope(specs: list[LimitSpec]) -> dict[str, dict[str, LimitSpec]]:
    by_scope: dict[str, dict[str, LimitSpec]] = {}
    for spec in specs:
        if spec.metric in PER_MINUTE:
            by_scope.setdefault(spec.scope_key, {})[spec.metric] = spec
    return by_scope


def check_rates_redis(schema: str, specs: list[LimitSpec], tokens: int, now: datetime) -> Counts:
    """Count one request of ``tokens`` in every rate-limited scope's current Redis window.

    Raises RateLimited (and counts nothing) when a limit would be exceeded; otherwise returns
    the counts including this request. Raises ``redis.RedisError`` when Redis is unreachable.
    """
    by_scope = _by_scope(specs)
    if not by_scope:
        return {}
    keys: list[str] = []
    args: list[int] = [tokens]
    scopes = list(by_scope)
    for scope in scopes:
        base = _key(schema, scope, now)
        keys += [base + ":r", base + ":t"]
        limits = by_scope[scope]
        rpm = limits.get(Limit.Metric.REQUESTS_PER_MINUTE)
        tpm = limits.get(Limit.Metric.TOKENS_PER_MINUTE)
        args += [int(rpm.hard) if rpm else -1, int(tpm.hard) if tpm else -1]
    result = [int(v) for v in _redis().eval(_COUNT_SCRIPT, len(keys), *keys, *args)]
    counts = {scope: (result[2 * i + 1], result[2 * i + 2]) for i, scope in enumerate(scopes)}
    if result[0]:
        scope = scopes[abs(result[0]) - 1]
        metric = (
            Limit.Metric.REQUESTS_PER_MINUTE if result[0] > 0 else Limit.Metric.TOKENS_PER_MINUTE
        )
        raise _refused(by_scope[scope][metric], now)
    return counts


def uncount_redis(schema: str, scope_keys: list[str], tokens: int, now: datetime) -> None:
    """Undo ``check_rates_redis`` for a request refused afterwards (by a budget)."""
    if not scope_keys:
        return
    keys: list[str] = []
    for scope in scope_keys:
        base = _key(schema, scope, now)
        keys += [base + ":r", base + ":t"]
    _redis().eval(_UNCOUNT_SCRIPT, len(keys), *keys, tokens)


def redis_counts(schema: str, scope_keys: list[str], now: datetime) -> Counts:
    """Current-window counts in Redis, without counting anything (for the quota overview)."""
    if not scope_keys:
        return {}
    keys: list[str] = []
    for scope in scope_keys:
        base = _key(schema, scope, now)
        keys += [base + ":r", base + ":t"]
    values = _redis().mget(keys)
    return {
        scope: (int(values[2 * i] or 0), int(values[2 * i + 1] or 0))
        for i, scope in enumerate(scope_keys)
    }
