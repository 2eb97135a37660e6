"""The compliance console: roles, tenant isolation, filters, keyset pages, streamed exports."""

import json
import tracemalloc

import pytest
from django.db import connection
from django.utils import timezone

from audit import selectors, services
from audit.models import AuditRecord
from gateway.records import CallRecord, new_call_id

pytestmark = pytest.mark.django_db


def _record(tenant, **kw):
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
        raw_output="the AI answer",
    )
    base.update(kw)
    with tenant.context():
        return services.record_audit(CallRecord(**base))


def test_viewer_and_editor_get_403(staff, tenant_a):
    for role in ("viewer", "editor"):
        assert staff(role).get(f"/t/{tenant_a.slug}/audit/").status_code == 403


def test_reviewer_of_a_sees_nothing_of_b(staff, tenant_a, tenant_b):
    mine = _record(tenant_a, end_user="alice-a")
    theirs = _record(tenant_b, end_user="bob-b")
    client = staff("reviewer", tenant_key="a")
    listing = client.get(f"/t/{tenant_a.slug}/audit/").content.decode()
    assert "alice-a" in listing and "bob-b" not in listing
    assert client.get(f"/t/{tenant_b.slug}/audit/").status_code == 404
    # B's record id under A's URL is simply not there
    assert client.get(f"/t/{tenant_a.slug}/audit/{theirs.id}/").status_code in (200, 404)
    page = client.get(f"/t/{tenant_a.slug}/audit/{theirs.id}/")
    assert "bob-b" not in page.content.decode()
    assert client.get(f"/t/{tenant_a.slug}/audit/{mine.id}/").status_code == 200


def test_detail_shows_amendment_diff_and_review(staff, tenant_a):
    row = _record(tenant_a, raw_output="Dear customer, we are sorry.")
    with tenant_a.context():
        services.add_feedback(
            call_id=row.call_id,
            rating="down",
            edited_output="Dear Ms Doe, we refunded you.",
            editor_id="ag-1",
            editor_name="Agent One",
        )
    client = staff("reviewer")
    html = client.get(f"/t/{tenant_a.slug}/audit/{row.id}/").content.decode()
    assert "modified by Agent One" in html and "diff_" in html
    assert (
        client.post(f"/t/{tenant_a.slug}/audit/{row.id}/review/", {"comment": "ok"}).status_code
        == 302
    )
    with tenant_a.context():
        assert AuditRecord.objects.get(pk=row.pk).reviews.get().comment == "ok"


def test_filters_and_keyset_pages(tenant_a):
    with tenant_a.context():
        for i in range(7):
            _record(tenant_a, feature="filter-test", degraded=i % 2 == 0, end_user=f"f{i}")
        filters = selectors.AuditFilters(feature="filter-test", flags=("degraded",))
        first, cursor = selectors.page(filters, size=3)
        second, end = selectors.page(filters, before_seq=cursor, size=3)
    assert len(first) == 3 and len(second) == 1 and end is None
    assert all(r.degraded for r in first + second)
    assert [r.seq for r in first] == sorted((r.seq for r in first), reverse=True)
    assert first[-1].seq > second[0].seq


def _bulk_insert(tenant, count):
    """Rows straight into the table (the chain is not what these tests are about)."""
    with tenant.context(), connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_auditrecord")
        start = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO audit_auditrecord (seq, prev_hash, hash, call_id, request_id, created_at,
                api_key_prefix, staff_username, end_user, feature, mode, endpoint, alias,
                deployment, provider, provider_model, provider_request_id, prompt_version_label,
                variant, retrieved_chunks, input_messages, raw_output, latency_ms, attempts,
                input_tokens, output_tokens, cost, cache_hit, fallback_used, degraded,
                injection_suspected, pii_found, has_pii, flags, status, error_type, error_message)
            SELECT %s + g, '', md5(g::text), 'bulk_' || (%s + g), 'r', now(), 'sk', '',
                'user-' || (g %% 500), 'bulk', 'sync', 'chat', 'fast', 'd', 'p', 'm', '', '', '',
                '[]', '[{"role": "user", "content": "a question of some length"}]',
                repeat('answer text ', 20), '{"total": 12.5}', '[]', 100, 50, 0.0001,
                false, g %% 10 = 0, false, false, '{}', false, '[]', 'ok', '', ''
            FROM generate_series(1, %s) AS g
            """,
            [start, start, count],
        )


@pytest.mark.slow
def test_export_of_100k_records_streams_in_bounded_memory(tenant_b):
    _bulk_insert(tenant_b, 100_000)
    filters = selectors.AuditFilters(feature="bulk")
    tracemalloc.start()
    rows = 0
    size = 0
    with tenant_b.context():
        for chunk in selectors.export_jsonl(filters):
            rows += chunk.count("\n")
            size += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 100_000
    assert size > 50_000_000  # ~50+ MB exported ...
    assert peak < 30_000_000  # ... through well under that in memory
    with tenant_b.context():
        page, cursor = selectors.page(
            selectors.AuditFilters(feature="bulk", flags=("fallback",)), size=50
        )
        deep, _ = selectors.page(selectors.AuditFilters(feature="bulk"), before_seq=500, size=50)
    assert len(page) == 50 and all(r.fallback_used for r in page) and cursor
    assert len(deep) == 50


def test_csv_export_over_http(staff, tenant_a):
    _record(tenant_a, feature="csv-test", raw_output='contains, a comma and "quotes"')
    client = staff("admin")
    response = client.get(f"/t/{tenant_a.slug}/audit/export.csv", {"feature": "csv-test"})
    assert response.status_code == 200
    body = b"".join(response).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("seq,call_id") and len(lines) == 2
    assert '"contains, a comma and ""quotes"""' in lines[1]
    jsonl = client.get(f"/t/{tenant_a.slug}/audit/export.jsonl", {"feature": "csv-test"})
    row = json.loads(b"".join(jsonl).decode().strip())
    assert row["feature"] == "csv-test"


def test_chain_indicator(staff, tenant_a):
    _record(tenant_a)
    html = staff("reviewer").get(f"/t/{tenant_a.slug}/audit/chain/").content.decode()
    assert 'id="chain-ok"' in html
