"""The operator view: superusers only, figures from every tenant, circuit states."""

from decimal import Decimal

from django.utils import timezone

from gateway.models import CircuitState
from usage.models import UsageRecord


def test_operator_view_shows_every_tenant_and_circuits(staff, tenant_a, tenant_b):
    for fixture, cost in ((tenant_a, "0.5"), (tenant_b, "0.25")):
        with fixture.context():
            UsageRecord.objects.create(
                call_id=f"op-{fixture.slug}",
                request_id="r",
                created_at=timezone.now(),
                feature="f",
                mode="sync",
                endpoint="chat",
                status="failed",
                deployment="op-deployment",
                cost=Decimal(cost),
                total_ms=20,
            )
    CircuitState.objects.create(deployment="op-deployment", state="open", consecutive_failures=7)
    html = staff(None, superuser=True).get("/operator/").content.decode()
    assert tenant_a.tenant.name in html and tenant_b.tenant.name in html
    assert "op-deployment" in html and ">open<" in html and ">7<" in html


def test_operator_view_is_for_superusers_only(staff):
    assert staff("admin").get("/operator/").status_code == 403
