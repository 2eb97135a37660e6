"""Circuit-breaker state in Redis (when ``REDIS_URL`` is set): one hash per deployment, every
transition a Lua script, so concurrent processes cannot lose a failure or let two probes through."""

from __future__ import annotations

import redis.asyncio as aioredis

_PREFIX = "switchboard:circuit:"

# KEYS[1] hash; ARGV: now, threshold, cooldown. Returns the new state.
_FAILURE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') + 1
local now = tonumber(ARGV[1])
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[2])) then
  state = 'open'
  redis.call('HSET', KEYS[1], 'opened_until', now + tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'state', state, 'failures', failures)
return state
"""

# KEYS[1] hash; ARGV: now, probe_timeout. Returns allow | probe | deny.
_ACQUIRE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local now = tonumber(ARGV[1])
if state == 'closed' then return 'allow' end
if state == 'open' and tonumber(redis.call('HGET', KEYS[1], 'opened_until') or '0') <= now then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]))
  return 'probe'
end
if state == 'half_open' and tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0') <= now then
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
  return 'probe'
end
return 'deny'
"""


class RedisBreakerStore:
    def __init__(
        self, url: str, *, threshold: int, cooldown_s: float, probe_timeout_s: float = 30.0
    ) -> None:
        self._url = url
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.probe_timeout_s = probe_timeout_s
        self._clients: dict[int, aioredis.Redis] = {}

    def _client(self) -> aioredis.Redis:
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            client = aioredis.Redis.from_url(self._url, decode_responses=True)
            self._clients[loop_id] = client
        return client

    async def _now(self, client: aioredis.Redis) -> float:
        seconds, micros = await client.time()
        return seconds + micros / 1e6

    async def acquire(self, deployment: str) -> str:
        client = self._client()
        return await client.eval(
            _ACQUIRE, 1, _PREFIX + deployment, await self._now(client), self.probe_timeout_s
        )

    async def record_failure(self, deployment: str, error: str = "") -> str:
        client = self._client()
        return await client.eval(
            _FAILURE,
            1,
            _PREFIX + deployment,
            await self._now(client),
            self.threshold,
            self.cooldown_s,
        )

    async def record_success(self, deployment: str) -> None:
        await self._client().hset(_PREFIX + deployment, mapping={"state": "closed", "failures": 0})

    async def get_state(self, deployment: str) -> str:
        return await self._client().hget(_PREFIX + deployment, "state") or "closed"
