"""The usage dashboard and the quota page."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from tests.fixtures_gateway import wait_for
from tests.usage.factories import call_record
from usage import selectors, services
from usage.models import Limit, UsageRecord


def _admin_client(tenant):
    from tenants import services

    user = services.create_staff_user(
        username=f"quota-admin-{tenant.slug}", email="", password="Quota-pass-123"
    )
    services.set_membership(user=user, tenant=tenant, role="admin")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_dashboard_of_the_last_30_days_shows_todays_calls(staff, tenant_a):
    now = timezone.now()
    with tenant_a.context():
        services.record_usage_batch(
            [
                call_record(
                    f"dash-{i}",
                    created_at=now - timedelta(days=i % 2),
                    feature="dash",
                    input_tokens=10 * i,
                    output_tokens=5,
                    cost=Decimal("0.0125"),
                    latency_ms={"total": 10.0 + i, "provider": 5.0},
                    end_user=f"u{i % 2}",
                )
                for i in range(5)
            ]
        )
        data = selectors.dashboard(start=(now - timedelta(days=1)).date(), end=now.date())
        expected = UsageRecord.objects.filter(
            created_at__date__gte=(now - timedelta(days=1)).date()
        ).aggregate(cost=Sum("cost"), inp=Sum("input_tokens"))
    assert Decimal(data["totals"]["cost"]) == expected["cost"]
    assert data["totals"]["input_tokens"] == expected["inp"]
    assert sum(sum(v) for v in data["chart"]["cost"].values()) == pytest.approx(
        float(expected["cost"])
    )
    assert {p["stage"] for p in data["percentiles"]} >= {"total", "provider"}
    html = staff("viewer").get(f"/t/{tenant_a.slug}/usage/").content.decode()
    assert 'id="cost-chart"' in html and "vendor/chart.umd.min.js" in html
    csv_body = staff("viewer").get(f"/t/{tenant_a.slug}/usage/export.csv").content.decode()
    assert csv_body.startswith("day,feature,requests,tokens,cost_usd") and ",dash," in csv_body


@pytest.mark.django_db
def test_viewer_cannot_edit_quotas(staff, tenant_a):
    client = staff("viewer")
    assert client.get(f"/t/{tenant_a.slug}/usage/quotas/").status_code == 200
    response = client.post(
        f"/t/{tenant_a.slug}/usage/quotas/",
        {"scope": "tenant", "metric": "monthly_tokens", "hard": "1", "soft_percent": "80"},
    )
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_quota_edited_in_the_console_refuses_the_next_request(fresh_tenant, asgi_server, routing):
    tenant, key = fresh_tenant
    from prompts.models import Feature  # noqa: F401 - the tenant's features exist

    client = _admin_client(tenant)
    ok = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200
    response = client.post(
        f"/t/{tenant.slug}/usage/quotas/",
        {
            "scope": "tenant",
            "scope_value": "",
            "metric": "monthly_tokens",
            "hard": "10",
            "soft_percent": "80",
        },
    )
    assert response.status_code == 302
    refused = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi again"}]},
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["param"] == "tenant.monthly_tokens"
    page = client.get(f"/t/{tenant.slug}/usage/quotas/").content.decode()
    assert "monthly_tokens" in page and "hard" in page
    from django_tenants.utils import schema_context

    with schema_context(tenant.schema_name):
        assert Limit.objects.get().hard == 10
        assert wait_for(lambda: UsageRecord.objects.filter(status="refused").exists())
