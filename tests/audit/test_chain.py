"""The audit trail is append-only in the database and tamper-evident by its hash chain."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from audit import services
from audit.chain import verify_chain
from audit.models import AuditRecord
from gateway.records import CallRecord, new_call_id

pytestmark = pytest.mark.django_db(transaction=True)


def _record(**kw) -> CallRecord:
    base = dict(
        call_id=new_call_id(),
        request_id="req",
        created_at=timezone.now(),
        api_key_id=1,
        api_key_prefix="sk-sb-x",
        end_user="u1",
        feature="direct",
        mode="sync",
        endpoint="chat",
        alias="fast",
        raw_output="answer",
        input_messages=[{"role": "user", "content": "q"}],
        cost=Decimal("0.00012"),
        input_tokens=10,
        output_tokens=5,
        latency_ms={"total": 1.5},
    )
    base.update(kw)
    return CallRecord(**base)


@pytest.fixture
def tenant(fresh_tenant):
    return fresh_tenant[0]


def test_sql_update_and_delete_are_refused(tenant):
    with schema_context(tenant.schema_name):
        row = services.record_audit(_record())
        for sql in (
            "UPDATE audit_auditrecord SET raw_output = 'x' WHERE id = %s",
            "DELETE FROM audit_auditrecord WHERE id = %s",
        ):
            with pytest.raises((InternalError, ProgrammingError, IntegrityError)) as caught:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(sql, [row.id])
            assert "append-only" in str(caught.value)
        assert AuditRecord.objects.get(pk=row.pk).raw_output == "answer"


def test_one_record_per_call_id(tenant):
    record = _record()
    with schema_context(tenant.schema_name):
        assert services.record_audit(record) is not None
        assert services.record_audit(record) is None
        assert AuditRecord.objects.filter(call_id=record.call_id).count() == 1


def test_tampering_is_caught_with_the_first_broken_link(tenant):
    with schema_context(tenant.schema_name):
        rows = [services.record_audit(_record()) for _ in range(5)]
        assert verify_chain().ok
        with connection.cursor() as cursor:  # an attacker with superuser access
            cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_record_append_only")
            cursor.execute(
                "UPDATE audit_auditrecord SET raw_output = 'forged' WHERE id = %s", [rows[2].id]
            )
            cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER audit_record_append_only")
        report = verify_chain()
    assert not report.ok
    assert report.first_broken_seq == rows[2].seq
    assert "altered" in report.reason


def test_a_deleted_record_breaks_the_chain(tenant):
    with schema_context(tenant.schema_name):
        rows = [services.record_audit(_record()) for _ in range(4)]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL switchboard.audit_purge = 'on'")  # outside a purge
            cursor.execute("DELETE FROM audit_auditrecord WHERE id = %s", [rows[1].id])
        report = verify_chain()
    assert not report.ok and report.first_broken_seq == rows[2].seq


def test_concurrent_inserts_keep_one_valid_chain(tenant):
    errors = []

    def write():
        try:
            with schema_context(tenant.schema_name):
                for _ in range(10):
                    services.record_audit(_record())
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with schema_context(tenant.schema_name):
        report = verify_chain()
        assert report.ok and report.records_checked == 80


def test_retention_purge_is_accepted_by_the_verifier(tenant):
    old = timezone.now() - timedelta(days=400)
    with schema_context(tenant.schema_name):
        for _ in range(3):
            services.record_audit(_record(created_at=old))
        for _ in range(2):
            services.record_audit(_record())
        result = services.purge_expired(retention_days=365)
        assert result.records_purged == 3
        assert AuditRecord.objects.count() == 2
        report = verify_chain()
        assert report.ok and report.records_checked == 2
        services.record_audit(_record())
        assert verify_chain().ok


def test_verify_command_exits_nonzero_on_a_broken_chain(tenant):
    from django.core.management import CommandError, call_command

    with schema_context(tenant.schema_name):
        row = services.record_audit(_record())
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_record_append_only")
            cursor.execute(
                "UPDATE audit_auditrecord SET end_user = 'someone-else' WHERE id = %s", [row.id]
            )
            cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER audit_record_append_only")
    with pytest.raises(CommandError):
        call_command("verify_audit_chain", tenant=tenant.slug)
