"""Admission stays cheap: one database round trip on the hot path, and its measured latency."""

import statistics
import time
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tenants import services as tenant_services
from tenants.models import ApiKey
from tests.usage.factories import REDIS_URL, admit, set_plan, settle
from usage import ratelimit, services
from usage.limits import forget_limits

pytestmark = pytest.mark.django_db(transaction=True)


def _admit_in_schema(tenant, call_id: str, **call) -> services.Admission:
    """Admit as the gateway does: on a connection already in the tenant's schema (no SET)."""
    return services.admit(
        tenant=tenant,
        api_key_id=call.get("key"),
        end_user=call.get("user", ""),
        feature=call.get("feature", "direct"),
        call_id=call_id,
        request_id="r",
        estimated_tokens=call.get("tokens", 100),
        max_cost=Decimal("0.001"),
    )


def _configure(tenant) -> int:
    """A realistic configuration: plan budgets and rates, a per-key and per-feature limit."""
    set_plan(
        tenant,
        monthly_token_limit=10**9,
        monthly_spend_limit=Decimal(10**6),
        requests_per_minute=10**6,
        tokens_per_minute=10**9,
    )
    key = tenant_services.create_api_key(tenant=tenant, name="bench").key
    ApiKey.objects.filter(pk=key.pk).update(requests_per_minute=10**6)
    services.set_limit(
        tenant=tenant,
        scope="feature",
        scope_value="summarize",
        metric="monthly_spend",
        hard=Decimal(10**5),
    )
    services.set_limit(
        tenant=tenant, scope="end_user", scope_value="*", metric="monthly_tokens", hard=10**8
    )
    forget_limits(tenant)
    return key.id


def test_hot_path_is_one_round_trip(fresh_tenant, settings):
    settings.REDIS_URL = ""
    tenant, _ = fresh_tenant
    key_id = _configure(tenant)
    with schema_context(tenant.schema_name):
        # the first call loads the configuration and creates the month's counters
        _admit_in_schema(tenant, "warm", key=key_id, feature="summarize", user="u1")
        with CaptureQueriesContext(connection) as queries:
            admission = _admit_in_schema(tenant, "hot", key=key_id, feature="summarize", user="u1")
    assert admission.reservation_id is not None
    assert len(queries) == 1, [q["sql"][:80] for q in queries]


def test_soft_limit_costs_a_query_once_per_period_only(fresh_tenant, settings):
    settings.REDIS_URL = ""
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=1000, soft_limit_percent=10)
    admit(tenant, "over-soft", tokens=200)
    settle(tenant, "over-soft", 200, Decimal("0.01"))
    with schema_context(tenant.schema_name):
        _admit_in_schema(tenant, "noticed", tokens=10)
        with CaptureQueriesContext(connection) as queries:
            admission = _admit_in_schema(tenant, "again", tokens=10)
    assert admission.warnings and len(queries) == 1


@pytest.mark.parametrize("rate_store", ["postgres", "redis"])
def test_admission_latency(fresh_tenant, settings, rate_store):
    """p50/p95 over 1,000 admissions (in-process, embedded PostgreSQL; rate windows in
    PostgreSQL or Redis), printed for the benchmarks; the bound only catches a gross
    regression such as a query per limit."""
    settings.REDIS_URL = REDIS_URL if rate_store == "redis" else ""
    ratelimit._client = None
    if rate_store == "redis":
        try:
            ratelimit._redis().ping()
        except redis.RedisError:
            pytest.skip("no Redis at " + REDIS_URL)
    tenant, _ = fresh_tenant
    key_id = _configure(tenant)
    timings = []
    with schema_context(tenant.schema_name):
        for i in range(50):  # every end user's counter exists before the measurement
            _admit_in_schema(tenant, f"warm-{i}", key=key_id, feature="summarize", user=f"u{i}")
        for i in range(1000):
            started = time.perf_counter()
            _admit_in_schema(
                tenant, f"bench-{i}", key=key_id, feature="summarize", user=f"u{i % 50}"
            )
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p50, p95 = statistics.median(timings), timings[949]
    ratelimit._client = None
    print(f"\nadmission latency ({rate_store}), 1000 calls: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    assert p95 < 50
