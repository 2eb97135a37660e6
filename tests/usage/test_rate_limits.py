"""Rate limits per tenant, key, feature and end user, in PostgreSQL and in Redis."""

from decimal import Decimal

import httpx
import pytest
import redis
from django_tenants.utils import schema_context

from gateway.errors import QuotaExceeded, RateLimited
from tenants import services as tenant_services
from tenants.models import ApiKey
from tests.usage.factories import REDIS_URL, admit, set_plan, within_one_window
from usage import ratelimit, services
from usage.limits import forget_limits
from usage.models import BudgetCounter, RateWindow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["postgres", "redis"])
def backend(request, settings, fresh_tenant):
    """Each test runs against both window stores; Redis is skipped when unreachable."""
    tenant, _ = fresh_tenant
    ratelimit._client = None
    if request.param == "redis":
        settings.REDIS_URL = REDIS_URL
        try:
            client = ratelimit._redis()
            client.ping()
        except redis.RedisError:
            pytest.skip("no Redis at " + REDIS_URL)
        # a schema name of an earlier run may come back within the keys' lifetime
        stale = list(client.scan_iter(f"switchboard:rate:{tenant.schema_name}:*"))
        if stale:
            client.delete(*stale)
    else:
        settings.REDIS_URL = ""
    within_one_window()
    yield request.param
    ratelimit._client = None


def _pg_windows(tenant) -> dict[str, tuple[int, int]]:
    with schema_context(tenant.schema_name):
        return {w.scope_key: (w.requests, w.tokens) for w in RateWindow.objects.all()}


def test_tenant_requests_per_minute(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    set_plan(tenant, requests_per_minute=2)
    first = admit(tenant, "r1")
    second = admit(tenant, "r2")
    assert first.headers["X-RateLimit-Limit-Requests"] == "2"
    assert first.headers["X-RateLimit-Remaining-Requests"] == "1"
    assert second.headers["X-RateLimit-Remaining-Requests"] == "0"
    assert first.headers["X-RateLimit-Reset-Requests"].endswith("s")
    with pytest.raises(RateLimited) as caught:
        admit(tenant, "r3")
    err = caught.value
    assert err.status == 429 and err.code == "rate_limited"
    assert err.param == "tenant.requests_per_minute"
    assert "2 requests per minute" in err.message
    assert 1 <= err.retry_after <= 60
    # the refused request took nothing: no reservation, no count
    with schema_context(tenant.schema_name):
        assert BudgetCounter.objects.get(scope_key="tenant").tokens_reserved == 200
    if backend == "postgres":
        assert _pg_windows(tenant)["tenant"] == (2, 200)


def test_tenant_tokens_per_minute(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    set_plan(tenant, tokens_per_minute=1000)
    admission = admit(tenant, "t1", tokens=700)
    assert admission.headers["X-RateLimit-Remaining-Tokens"] == "300"
    with pytest.raises(RateLimited) as caught:
        admit(tenant, "t2", tokens=400)
    assert caught.value.param == "tenant.tokens_per_minute"
    admit(tenant, "t3", tokens=300)  # what is left still fits


def test_per_key_rate_limit(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    limited = tenant_services.create_api_key(tenant=tenant, name="limited").key
    other = tenant_services.create_api_key(tenant=tenant, name="other").key
    ApiKey.objects.filter(pk=limited.pk).update(requests_per_minute=1)
    forget_limits(tenant)
    admit(tenant, "k1", key=limited.id)
    with pytest.raises(RateLimited) as caught:
        admit(tenant, "k2", key=limited.id)
    assert caught.value.param == f"api_key:{limited.id}.requests_per_minute"
    admit(tenant, "k3", key=other.id)
    admit(tenant, "k4", key=other.id)


def test_per_feature_rate_limit(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    services.set_limit(
        tenant=tenant,
        scope="feature",
        scope_value="summarize",
        metric="requests_per_minute",
        hard=Decimal(1),
    )
    admit(tenant, "f1", feature="summarize")
    with pytest.raises(RateLimited) as caught:
        admit(tenant, "f2", feature="summarize")
    assert caught.value.param == "feature:summarize.requests_per_minute"
    admit(tenant, "f3", feature="classify")


def test_per_end_user_rate_limit(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    services.set_limit(
        tenant=tenant,
        scope="end_user",
        scope_value="*",
        metric="requests_per_minute",
        hard=Decimal(1),
    )
    services.set_limit(
        tenant=tenant,
        scope="end_user",
        scope_value="batch-bot",
        metric="requests_per_minute",
        hard=Decimal(3),
    )
    admit(tenant, "u1", user="alice")
    admit(tenant, "u2", user="bob")
    with pytest.raises(RateLimited) as caught:
        admit(tenant, "u3", user="alice")
    assert caught.value.param == "end_user:alice.requests_per_minute"
    for i in range(3):
        admit(tenant, f"bot{i}", user="batch-bot")
    with pytest.raises(RateLimited):
        admit(tenant, "bot3", user="batch-bot")


def test_request_refused_by_a_budget_is_not_counted_against_the_rate(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    set_plan(tenant, requests_per_minute=2, monthly_token_limit=150)
    admit(tenant, "b1", tokens=100)
    with pytest.raises(QuotaExceeded):
        admit(tenant, "b2", tokens=100)
    second = admit(tenant, "b3", tokens=50)  # the refused call left the second slot free
    assert second.headers["X-RateLimit-Remaining-Requests"] == "0"


def test_limit_edits_apply_to_the_next_request(fresh_tenant, backend):
    tenant, _ = fresh_tenant
    admit(tenant, "e0")  # the configuration is now cached in this process
    limit = services.set_limit(
        tenant=tenant, scope="tenant", scope_value="", metric="requests_per_minute", hard=1
    )
    admit(tenant, "e1")
    with pytest.raises(RateLimited):
        admit(tenant, "e2")
    services.remove_limit(tenant=tenant, limit=limit)
    admit(tenant, "e3")


def test_rate_limit_over_http_is_429_with_retry_after(fresh_tenant, asgi_server, routing, settings):
    settings.REDIS_URL = ""
    tenant, key = fresh_tenant
    set_plan(tenant, requests_per_minute=2)
    within_one_window(10)
    responses = [
        httpx.post(
            asgi_server.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        for _ in range(3)
    ]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit-Requests"] == "2"
    assert responses[1].headers["X-RateLimit-Remaining-Requests"] == "0"
    refused = responses[2]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["param"] == "tenant.requests_per_minute"


def test_unreachable_redis_falls_back_to_postgres(fresh_tenant, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    ratelimit._client = None
    tenant, _ = fresh_tenant
    set_plan(tenant, requests_per_minute=1)
    within_one_window()
    try:
        admit(tenant, "x1")
        with pytest.raises(RateLimited):
            admit(tenant, "x2")
    finally:
        ratelimit._client = None
    assert _pg_windows(tenant)["tenant"] == (1, 100)
