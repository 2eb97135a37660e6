"""Budgets and rate limits: refusals, soft warnings, and the parallel-overspend bound."""

import threading
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from gateway.errors import QuotaExceeded, RateLimited
from gateway.records import CallRecord
from tests.fixtures_gateway import wait_for
from usage import services
from usage.models import BudgetCounter, SoftLimitNotice, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def _set_plan(tenant, **limits):
    for name, value in limits.items():
        setattr(tenant.plan, name, value)
    tenant.plan.save()
    services.forget_limits(tenant)


def _admit(tenant, call_id, tokens=100, cost=Decimal("0.001"), **kw):
    with schema_context(tenant.schema_name):
        return services.admit(
            tenant=tenant,
            api_key_id=kw.get("key"),
            end_user=kw.get("user", ""),
            feature=kw.get("feature", "direct"),
            call_id=call_id,
            request_id="r",
            estimated_tokens=tokens,
            max_cost=cost,
        )


def _settle(tenant, call_id, tokens, cost):
    from django.utils import timezone

    record = CallRecord(
        call_id=call_id,
        request_id="r",
        created_at=timezone.now(),
        api_key_id=None,
        api_key_prefix="",
        end_user="",
        feature="direct",
        mode="sync",
        endpoint="chat",
        alias="fast",
        input_tokens=tokens,
        output_tokens=0,
        cost=cost,
    )
    with schema_context(tenant.schema_name):
        services.record_usage(record)


def test_hard_token_limit_refuses_with_quota_error(fresh_tenant):
    tenant, _ = fresh_tenant
    _set_plan(tenant, monthly_token_limit=1000, monthly_spend_limit=None)
    _admit(tenant, "c1", tokens=600)
    _settle(tenant, "c1", 600, Decimal("0.01"))
    with pytest.raises(QuotaExceeded) as caught:
        _admit(tenant, "c2", tokens=500)
    err = caught.value
    assert err.code == "ai_quota_exceeded" and err.status == 429
    assert "tenant.monthly_tokens" in err.message and "600 tokens used of 1000" in err.message
    assert "resets at" in err.message


def test_settlement_replaces_reservation_with_actual(fresh_tenant):
    tenant, _ = fresh_tenant
    _set_plan(tenant, monthly_token_limit=10_000)
    _admit(tenant, "s1", tokens=900, cost=Decimal("0.5"))
    with schema_context(tenant.schema_name):
        counter = BudgetCounter.objects.get(scope_key="tenant")
        assert counter.tokens_reserved == 900
    _settle(tenant, "s1", 120, Decimal("0.0012"))
    with schema_context(tenant.schema_name):
        counter.refresh_from_db()
        assert counter.tokens_reserved == 0 and counter.spend_reserved == 0
        assert counter.tokens_used == 120 and counter.spend_used == Decimal("0.0012")
        assert UsageRecord.objects.get(call_id="s1").input_tokens == 120
    _settle(tenant, "s1", 120, Decimal("0.0012"))  # idempotent
    with schema_context(tenant.schema_name):
        counter.refresh_from_db()
        assert counter.tokens_used == 120


def test_soft_limit_warns_once_per_period(fresh_tenant):
    tenant, _ = fresh_tenant
    _set_plan(tenant, monthly_token_limit=1000, soft_limit_percent=50)
    first = _admit(tenant, "w1", tokens=600)
    second = _admit(tenant, "w2", tokens=100)
    assert "tenant.monthly_tokens" in first.headers["X-Switchboard-Quota-Warning"]
    assert second.warnings
    with schema_context(tenant.schema_name):
        assert SoftLimitNotice.objects.count() == 1


def test_parallel_requests_cannot_overspend(fresh_tenant):
    """50 threads, each its own connection, against a budget with room for about 10 calls."""
    tenant, _ = fresh_tenant
    budget = Decimal("1.00")
    reservation = Decimal("0.10")
    _set_plan(tenant, monthly_spend_limit=Decimal("1.05"), monthly_token_limit=None)
    _admit(tenant, "pre", cost=Decimal("0.05"))
    _settle(tenant, "pre", 10, Decimal("0.05"))
    admitted, refused, failures = [], [], []
    start = threading.Barrier(50)

    def worker(i):
        try:
            start.wait()
            _admit(tenant, f"p{i}", cost=reservation)
            admitted.append(i)
        except QuotaExceeded:
            refused.append(i)
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(admitted) + len(refused) == 50
    with schema_context(tenant.schema_name):
        counter = BudgetCounter.objects.get(scope_key="tenant")
    committed = counter.spend_used + counter.spend_reserved
    assert committed <= Decimal("1.05")  # never past the hard limit
    assert committed > Decimal("1.05") - reservation  # and the budget was really used
    assert len(admitted) == 10
    assert budget  # the 1.00 of room is what 10 reservations of 0.10 fill


def test_rate_limit_is_429_with_retry_after(fresh_tenant, asgi_server, routing):
    tenant, key = fresh_tenant
    _set_plan(tenant, requests_per_minute=2)
    statuses, retry_after = [], None
    for _ in range(3):
        response = httpx.post(
            asgi_server.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After")
            assert response.json()["error"]["code"] == "rate_limited"
    # a minute boundary may fall between the calls; then the third one passes
    assert statuses[:2] == [200, 200]
    if statuses[2] == 429:
        assert retry_after and 1 <= int(retry_after) <= 60


def test_quota_refusal_over_http_names_the_limit(fresh_tenant, asgi_server, routing):
    tenant, key = fresh_tenant
    _set_plan(tenant, monthly_token_limit=5)
    response = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "ai_quota_exceeded" and error["param"] == "tenant.monthly_tokens"

    def find():
        with schema_context(tenant.schema_name):
            return UsageRecord.objects.first()

    record = wait_for(find)
    assert record.status == "refused" and record.input_tokens == 0


def test_per_end_user_limit(fresh_tenant):
    from usage.models import Limit

    tenant, _ = fresh_tenant
    with schema_context(tenant.schema_name):
        Limit.objects.create(
            scope="end_user", scope_value="*", metric="requests_per_minute", hard=1
        )
    services.forget_limits(tenant)
    _admit(tenant, "u1", user="alice")
    _admit(tenant, "u2", user="bob")
    with pytest.raises(RateLimited) as caught:
        _admit(tenant, "u3", user="alice")
    assert caught.value.param == "end_user:alice.requests_per_minute"


def test_lost_reservation_is_swept_into_records(fresh_tenant):
    from datetime import timedelta

    from audit.models import AuditRecord
    from usage.models import Reservation

    tenant, _ = fresh_tenant
    _admit(tenant, "crashed", tokens=300, cost=Decimal("0.02"))
    with schema_context(tenant.schema_name):
        Reservation.objects.filter(call_id="crashed").update(
            expires_at=Reservation.objects.get(call_id="crashed").created_at - timedelta(1)
        )
        assert services.sweep_lost_reservations() == 1
        record = UsageRecord.objects.get(call_id="crashed")
        assert record.status == "lost" and record.tokens_estimated
        assert record.cost == Decimal("0.02")
        assert AuditRecord.objects.get(call_id="crashed").status == "lost"
        counter = BudgetCounter.objects.get(scope_key="tenant")
        assert counter.tokens_reserved == 0 and counter.tokens_used == 300
        assert services.sweep_lost_reservations() == 0
