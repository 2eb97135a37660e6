"""Isolation is structural: a row in tenant A's schema does not exist from tenant B's."""

from decimal import Decimal

from django.db import connection
from django.utils import timezone

from usage.models import UsageRecord


def _row(call_id: str) -> UsageRecord:
    return UsageRecord(
        call_id=call_id,
        request_id="r",
        created_at=timezone.now(),
        feature="f",
        mode="sync",
        endpoint="chat",
        status="ok",
        cost=Decimal("0.01"),
    )


def test_row_written_in_a_is_invisible_from_b(db, tenant_a, tenant_b):
    with tenant_a.context():
        _row("only-in-a").save()
        assert UsageRecord.objects.filter(call_id="only-in-a").exists()
    with tenant_b.context():
        # not filtered out: the table B sees is another table
        assert not UsageRecord.objects.filter(call_id="only-in-a").exists()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM usage_usagerecord WHERE call_id = 'only-in-a'")
            assert cursor.fetchone()[0] == 0


def test_public_schema_has_no_tenant_tables(db):
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass('public.usage_usagerecord'), "
            "to_regclass('public.audit_auditrecord')"
        )
        assert cursor.fetchone() == (None, None)


def test_pgvector_is_usable_from_a_tenant_schema(db, tenant_a):
    with tenant_a.context(), connection.cursor() as cursor:
        cursor.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector")
        assert cursor.fetchone()[0] == 1.0
