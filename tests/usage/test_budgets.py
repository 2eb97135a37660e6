"""Monthly budgets: hard refusals, soft warnings, settlement, and the parallel-overspend bound."""

import threading
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from gateway.errors import QuotaExceeded
from tests.fixtures_gateway import wait_for
from tests.usage.factories import admit, set_plan, settle
from usage import services
from usage.limits import period_of
from usage.models import BudgetCounter, Limit, Reservation, SoftLimitNotice, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def _counter(tenant, scope_key="tenant") -> BudgetCounter:
    with schema_context(tenant.schema_name):
        return BudgetCounter.objects.get(scope_key=scope_key)


def test_hard_token_limit_refuses_naming_limit_usage_and_reset(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=1000, monthly_spend_limit=None)
    admit(tenant, "c1", tokens=600)
    settle(tenant, "c1", 600, Decimal("0.01"))
    with pytest.raises(QuotaExceeded) as caught:
        admit(tenant, "c2", tokens=500)
    err = caught.value
    assert err.code == "ai_quota_exceeded" and err.status == 429
    assert err.param == "tenant.monthly_tokens"
    assert "600 tokens used of 1000" in err.message
    assert "resets at" in err.message and "-01T00:00:00Z" in err.message
    # the refusal reserved nothing: a call that fits is still admitted
    counter = _counter(tenant)
    assert counter.tokens_reserved == 0 and counter.spend_reserved == 0
    assert admit(tenant, "c3", tokens=400).reservation_id is not None


def test_hard_spend_limit_refuses(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_spend_limit=Decimal("0.05"), monthly_token_limit=None)
    admit(tenant, "s1", cost=Decimal("0.04"))
    settle(tenant, "s1", 10, Decimal("0.04"))
    with pytest.raises(QuotaExceeded) as caught:
        admit(tenant, "s2", cost=Decimal("0.02"))
    assert caught.value.param == "tenant.monthly_spend"
    assert "$0.0400 spent of $0.05" in caught.value.message


def test_quota_refusal_over_http_has_the_error_body(fresh_tenant, asgi_server, routing):
    tenant, key = fresh_tenant
    set_plan(tenant, monthly_token_limit=5)
    response = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "ai_quota_exceeded" and error["param"] == "tenant.monthly_tokens"
    assert "0 tokens used of 5" in error["message"] and "resets at" in error["message"]

    def refused_record():
        with schema_context(tenant.schema_name):
            return UsageRecord.objects.filter(status="refused").first()

    record = wait_for(refused_record)
    assert record.input_tokens == 0 and record.output_tokens == 0 and record.cost == 0


def test_settlement_releases_the_reservation_and_adds_the_actual(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=10_000)
    admission = admit(tenant, "s1", tokens=900, cost=Decimal("0.5"))
    counter = _counter(tenant)
    assert counter.tokens_reserved == 900 and counter.spend_reserved == Decimal("0.5")
    settle(tenant, "s1", 120, Decimal("0.0012"))
    counter = _counter(tenant)
    assert counter.tokens_reserved == 0 and counter.spend_reserved == 0
    assert counter.tokens_used == 120 and counter.spend_used == Decimal("0.0012")
    with schema_context(tenant.schema_name):
        assert Reservation.objects.get(pk=admission.reservation_id).settled_at is not None
        assert UsageRecord.objects.get(call_id="s1").input_tokens == 120
    settle(tenant, "s1", 120, Decimal("0.0012"))  # the same call id again: a no-op
    counter = _counter(tenant)
    assert counter.tokens_used == 120 and counter.spend_used == Decimal("0.0012")
    with schema_context(tenant.schema_name):
        assert UsageRecord.objects.filter(call_id="s1").count() == 1


def test_failed_call_releases_its_reservation(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=1000)
    admit(tenant, "f1", tokens=800)
    settle(tenant, "f1", 0, Decimal(0), status="failed", error_type="upstream_unavailable")
    counter = _counter(tenant)
    assert counter.tokens_reserved == 0 and counter.tokens_used == 0
    admit(tenant, "f2", tokens=900)  # the whole budget is available again


def test_soft_limit_warns_and_is_recorded_once_per_period(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=1000, soft_limit_percent=50)
    below = admit(tenant, "w0", tokens=100)
    assert not below.warnings and "X-Switchboard-Quota-Warning" not in below.headers
    first = admit(tenant, "w1", tokens=500)
    second = admit(tenant, "w2", tokens=100)
    assert first.warnings == ["tenant.monthly_tokens at 60%"]
    assert first.headers["X-Switchboard-Quota-Warning"] == "tenant.monthly_tokens at 60%"
    assert second.warnings == ["tenant.monthly_tokens at 70%"]
    with schema_context(tenant.schema_name):
        notice = SoftLimitNotice.objects.get()
    assert (notice.scope_key, notice.metric) == ("tenant", "monthly_tokens")
    assert notice.period == period_of(notice.created_at) and notice.percent == 60


def test_soft_limit_notice_is_per_period(fresh_tenant):
    from usage.limits import LimitSpec

    tenant, _ = fresh_tenant
    spec = LimitSpec("tenant", "monthly_tokens", Decimal(1000), 80)
    assert services.on_soft_limit_crossed(tenant=tenant, spec=spec, period="2026-01", percent=81)
    assert not services.on_soft_limit_crossed(
        tenant=tenant, spec=spec, period="2026-01", percent=90
    )
    assert services.on_soft_limit_crossed(tenant=tenant, spec=spec, period="2026-02", percent=85)
    with schema_context(tenant.schema_name):
        assert sorted(SoftLimitNotice.objects.values_list("period", flat=True)) == [
            "2026-01",
            "2026-02",
        ]


def test_feature_budget_refuses_that_feature_only(fresh_tenant):
    tenant, _ = fresh_tenant
    services.set_limit(
        tenant=tenant,
        scope="feature",
        scope_value="summarize",
        metric="monthly_tokens",
        hard=Decimal(500),
    )
    admit(tenant, "a", tokens=400, feature="summarize")
    with pytest.raises(QuotaExceeded) as caught:
        admit(tenant, "b", tokens=400, feature="summarize")
    assert caught.value.param == "feature:summarize.monthly_tokens"
    admit(tenant, "c", tokens=400, feature="classify")
    assert _counter(tenant, "feature:summarize").tokens_reserved == 400
    assert _counter(tenant).tokens_reserved == 800


def test_each_end_user_has_a_budget_of_their_own(fresh_tenant):
    tenant, _ = fresh_tenant
    services.set_limit(
        tenant=tenant, scope="end_user", scope_value="*", metric="monthly_spend", hard=Decimal(1)
    )
    services.set_limit(
        tenant=tenant,
        scope="end_user",
        scope_value="vip",
        metric="monthly_spend",
        hard=Decimal(10),
    )
    admit(tenant, "a1", cost=Decimal("0.9"), user="alice")
    with pytest.raises(QuotaExceeded) as caught:
        admit(tenant, "a2", cost=Decimal("0.2"), user="alice")
    assert caught.value.param == "end_user:alice.monthly_spend"
    admit(tenant, "b1", cost=Decimal("0.9"), user="bob")
    admit(tenant, "v1", cost=Decimal("5"), user="vip")  # their own limit replaces the "*" one
    with schema_context(tenant.schema_name):
        assert Limit.objects.count() == 2


def test_parallel_requests_cannot_overspend(fresh_tenant):
    """50 threads, each with its own connection, against a budget with room for 10 calls."""
    tenant, _ = fresh_tenant
    reservation = Decimal("0.10")
    hard = Decimal("1.05")
    set_plan(tenant, monthly_spend_limit=hard, monthly_token_limit=None)
    admit(tenant, "pre", cost=Decimal("0.05"))
    settle(tenant, "pre", 10, Decimal("0.05"))
    admitted, refused, failures = [], [], []
    start = threading.Barrier(50)

    def worker(i):
        try:
            start.wait()
            admit(tenant, f"p{i}", cost=reservation)
            admitted.append(i)
        except QuotaExceeded:
            refused.append(i)
        except Exception as exc:  # reported below: any other outcome fails the test
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
    counter = _counter(tenant)
    committed = counter.spend_used + counter.spend_reserved
    assert committed <= hard  # never past the hard limit
    assert committed > hard - reservation  # and the budget really was used up
    assert len(admitted) == 10  # the 1.00 of room holds exactly 10 reservations of 0.10
    with schema_context(tenant.schema_name):
        assert Reservation.objects.filter(settled_at__isnull=True).count() == 10
