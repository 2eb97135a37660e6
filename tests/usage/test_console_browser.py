"""An admin in a real browser opens the usage dashboard, sees the charts drawn, and edits a
quota (headless Chromium from the distribution's packages, driven by Playwright)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.usage.factories import call_record
from usage import services as usage_services
from usage.models import Limit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_charts_and_quota_edit(asgi_server, fresh_tenant, tmp_path, browser):
    from tenants import services

    tenant, _ = fresh_tenant
    from django_tenants.utils import schema_context

    with schema_context(tenant.schema_name):
        usage_services.record_usage_batch(
            [
                call_record(
                    f"b-{i}",
                    created_at=timezone.now() - timedelta(days=i),
                    feature=("support-answer", "summarizer")[i % 2],
                    input_tokens=100,
                    output_tokens=20,
                    cost=Decimal("0.002"),
                    latency_ms={"total": 12.0},
                )
                for i in range(4)
            ]
        )
    user = services.create_staff_user(username="usage-admin", email="", password="Us4ge-pass!")
    services.set_membership(user=user, tenant=tenant, role="admin")
    page = browser.new_page()
    page.goto(asgi_server.url + "/login/")
    page.fill("#id_username", "usage-admin")
    page.fill("#id_password", "Us4ge-pass!")
    page.click("button[type=submit]")
    page.goto(f"{asgi_server.url}/t/{tenant.slug}/usage/")
    page.wait_for_selector("#cost-chart[data-drawn='2']")
    page.wait_for_selector("#tokens-chart[data-drawn='2']")
    page.screenshot(path=str(tmp_path / "usage.png"))
    page.goto(f"{asgi_server.url}/t/{tenant.slug}/usage/quotas/")
    page.select_option("#id_scope", "feature")
    page.fill("#id_scope_value", "summarizer")
    page.select_option("#id_metric", "monthly_spend")
    page.fill("#id_hard", "25")
    page.click("#save-limit")
    page.wait_for_selector("text=Limit saved")
    assert "feature:summarizer" in page.inner_text("#quotas")
    with schema_context(tenant.schema_name):
        limit = Limit.objects.get(scope="feature", scope_value="summarizer")
    assert limit.metric == "monthly_spend" and limit.hard == 25
