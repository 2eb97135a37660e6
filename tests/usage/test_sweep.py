"""Reservations whose process died become "lost" records, charged at what they reserved."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import AuditRecord
from tests.usage.factories import admit, set_plan, settle
from usage import services
from usage.models import BudgetCounter, RateWindow, Reservation, UsageRecord
from usage.tasks import sweep_all_tenants

pytestmark = pytest.mark.django_db(transaction=True)


def _age(tenant, call_id: str, seconds: int) -> None:
    """Pretend the call was admitted ``seconds`` ago."""
    with schema_context(tenant.schema_name):
        Reservation.objects.filter(call_id=call_id).update(
            created_at=timezone.now() - timedelta(seconds=seconds)
        )


def test_expired_reservation_becomes_a_lost_record(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, monthly_token_limit=10_000)
    admit(tenant, "crashed", tokens=300, cost=Decimal("0.02"), user="alice", feature="sum")
    _age(tenant, "crashed", 601)
    with schema_context(tenant.schema_name):
        assert services.sweep_lost_reservations() == 1
        record = UsageRecord.objects.get(call_id="crashed")
        assert record.status == "lost" and record.tokens_estimated
        assert record.input_tokens == 300 and record.cost == Decimal("0.02")
        assert (record.end_user, record.feature) == ("alice", "sum")
        assert AuditRecord.objects.get(call_id="crashed").status == "lost"
        counter = BudgetCounter.objects.get(scope_key="tenant")
        assert counter.tokens_reserved == 0 and counter.spend_reserved == 0
        assert counter.tokens_used == 300 and counter.spend_used == Decimal("0.02")
        assert Reservation.objects.get(call_id="crashed").settled_at is not None
        assert services.sweep_lost_reservations() == 0


def test_reservation_in_flight_is_left_alone(fresh_tenant):
    tenant, _ = fresh_tenant
    admit(tenant, "slow", tokens=300)
    _age(tenant, "slow", 599)
    with schema_context(tenant.schema_name):
        assert services.sweep_lost_reservations() == 0
        assert services.sweep_lost_reservations(older_than_seconds=60) == 1


def test_late_record_after_the_sweep_is_a_no_op(fresh_tenant):
    tenant, _ = fresh_tenant
    admit(tenant, "late", tokens=300, cost=Decimal("0.02"))
    with schema_context(tenant.schema_name):
        assert services.sweep_lost_reservations(older_than_seconds=0) == 1
    settle(tenant, "late", 100, Decimal("0.005"))
    with schema_context(tenant.schema_name):
        counter = BudgetCounter.objects.get(scope_key="tenant")
        assert counter.tokens_used == 300 and counter.tokens_reserved == 0
        assert UsageRecord.objects.get(call_id="late").status == "lost"


def test_settled_reservation_is_not_swept(fresh_tenant):
    tenant, _ = fresh_tenant
    admit(tenant, "done", tokens=300)
    settle(tenant, "done", 120, Decimal("0.001"))
    _age(tenant, "done", 3600)
    with schema_context(tenant.schema_name):
        assert services.sweep_lost_reservations() == 0
        assert UsageRecord.objects.get(call_id="done").status == "ok"


def test_task_sweeps_every_tenant_and_prunes_spent_state(fresh_tenant):
    tenant, _ = fresh_tenant
    set_plan(tenant, requests_per_minute=100)
    admit(tenant, "lost-1")
    admit(tenant, "old")
    settle(tenant, "old", 10, Decimal("0.001"))
    _age(tenant, "lost-1", 700)
    with schema_context(tenant.schema_name):
        Reservation.objects.filter(call_id="old").update(
            settled_at=timezone.now() - timedelta(days=2)
        )
        RateWindow.objects.create(
            scope_key="tenant", window_start=timezone.now() - timedelta(hours=1), requests=5
        )
    swept = sweep_all_tenants()
    assert swept[tenant.slug] == 1
    with schema_context(tenant.schema_name):
        assert UsageRecord.objects.get(call_id="lost-1").status == "lost"
        assert not Reservation.objects.filter(call_id="old").exists()
        assert Reservation.objects.filter(call_id="lost-1").exists()  # settled just now: kept
        assert RateWindow.objects.count() == 1  # this minute's window stays


def test_command_runs_the_sweep_now(fresh_tenant):
    from io import StringIO

    from django.core.management import call_command

    tenant, _ = fresh_tenant
    admit(tenant, "lost-2")
    _age(tenant, "lost-2", 700)
    out = StringIO()
    call_command("sweep_lost_reservations", stdout=out)
    assert f"{tenant.slug}: 1 lost call(s) recorded" in out.getvalue()
    with schema_context(tenant.schema_name):
        assert UsageRecord.objects.get(call_id="lost-2").status == "lost"
