"""Alerts: raised once per window, told by console notice, webhook and e-mail."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.alerts import evaluate
from jobs.models import Alert, WebhookDelivery, WebhookEndpoint
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def _calls(tenant, feature, n, **kw):
    with tenant.context():
        UsageRecord.objects.bulk_create(
            [
                UsageRecord(
                    call_id=f"al-{feature}-{i}-{kw.get('status', 'ok')}",
                    request_id="r",
                    created_at=timezone.now() - timedelta(minutes=1),
                    feature=feature,
                    mode="sync",
                    endpoint="chat",
                    cost=Decimal(0),
                    **kw,
                )
                for i in range(n)
            ]
        )


def test_error_rate_alert_is_raised_once_with_email_webhook_and_notice(
    staff, tenant_a, mailoutbox, settings
):
    settings.SWITCHBOARD_ALERT_MIN_CALLS = 10
    admin = staff("admin")
    admin.user.email = "admin@tenant-a.example"
    admin.user.save()
    with tenant_a.context():
        WebhookEndpoint.objects.create(
            url="https://hooks.example.com/x", secret="whsec_x", events=["alert.triggered"]
        )
    _calls(tenant_a, "flaky", 8, status="ok")
    _calls(tenant_a, "flaky", 6, status="failed")
    with tenant_a.context():
        first = evaluate(tenant_a.tenant)
        second = evaluate(tenant_a.tenant)  # the same window: nothing new
        kinds = [a.kind for a in first]
        assert "error_rate" in kinds and second == []
        assert WebhookDelivery.objects.filter(event="alert.triggered").exists()
        assert Alert.objects.filter(kind="error_rate", subject="flaky").count() == 1
    assert any("Error rate" in m.subject and "admin@tenant-a.example" in m.to for m in mailoutbox)
    page = admin.get(f"/t/{tenant_a.slug}/").content.decode()
    assert "alert-notice" in page and "flaky" in page
    alert = Alert.objects.none()
    with tenant_a.context():
        alert = Alert.objects.get(kind="error_rate", subject="flaky")
    admin.post(f"/t/{tenant_a.slug}/alerts/{alert.id}/ack/")
    assert "flaky: " not in admin.get(f"/t/{tenant_a.slug}/").content.decode()


def test_circuit_open_alert_for_a_deployment_the_tenant_uses(tenant_b):
    from gateway.models import CircuitState

    _calls(tenant_b, "any", 1, status="ok", deployment="alert-dep")
    CircuitState.objects.create(deployment="alert-dep", state="open", consecutive_failures=5)
    with tenant_b.context():
        kinds = {(a.kind, a.subject) for a in evaluate(tenant_b.tenant)}
    assert ("circuit_open", "alert-dep") in kinds


def test_quiet_traffic_raises_nothing(tenant_b, settings):
    settings.SWITCHBOARD_ALERT_MIN_CALLS = 10
    _calls(tenant_b, "healthy", 30, status="ok")
    with tenant_b.context():
        assert not [a for a in evaluate(tenant_b.tenant) if a.subject == "healthy"]
