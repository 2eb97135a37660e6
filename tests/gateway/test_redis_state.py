"""The Redis backends of shared state (used when REDIS_URL is set), against a real Redis."""

import asyncio
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis

from gateway.breaker_redis import RedisBreakerStore
from gateway.errors import RateLimited

URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable() -> bool:
    try:
        return redis.Redis.from_url(URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not _reachable(), reason="no Redis at " + URL)


def test_breaker_opens_after_threshold_then_lets_one_probe():
    store = RedisBreakerStore(URL, threshold=2, cooldown_s=0.3)
    name = f"dep-{uuid.uuid4().hex}"

    async def scenario():
        assert await store.acquire(name) == "allow"
        await store.record_failure(name)
        assert await store.acquire(name) == "allow"
        assert await store.record_failure(name) == "open"
        assert await store.acquire(name) == "deny"
        await asyncio.sleep(0.35)
        verdicts = await asyncio.gather(*(store.acquire(name) for _ in range(5)))
        assert sorted(verdicts) == ["deny"] * 4 + ["probe"]  # exactly one probe
        await store.record_success(name)
        assert await store.acquire(name) == "allow"

    asyncio.run(scenario())


def test_redis_rate_limit_refuses_and_undoes(settings):
    from usage.ratelimit import _redis, check_rates_redis
    from usage.services import LimitSpec

    settings.REDIS_URL = URL
    import usage.ratelimit as module

    module._client = None
    schema = f"s{uuid.uuid4().hex[:8]}"
    specs = [LimitSpec("tenant", "requests_per_minute", Decimal(2), 80)]
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    check_rates_redis(schema, specs, 10, now)
    check_rates_redis(schema, specs, 10, now)
    with pytest.raises(RateLimited) as caught:
        check_rates_redis(schema, specs, 10, now)
    assert caught.value.retry_after == 30
    key = f"switchboard:rate:{schema}:tenant:202601011200:r"
    assert int(_redis().get(key)) == 2  # the refused request was not counted
    module._client = None
