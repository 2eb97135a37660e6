"""Whatever happens to a call, it leaves exactly one audit record (and one usage record)."""

import httpx
import pytest

from audit.models import AuditRecord
from prompts.models import Feature
from tests.fixtures_gateway import wait_for
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def call(asgi_server, tenant_a, routing):
    with tenant_a.context():
        Feature.objects.update(model_alias="chat")

    def post(path, body, key=None):
        return httpx.post(
            asgi_server.url + path,
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {key or tenant_a.key}"},
        )

    return post


def _one_record_each(tenant, run_id=None, request_id=None):
    def find():
        with tenant.context():
            audits = (
                AuditRecord.objects.filter(call_id=run_id)
                if run_id
                else AuditRecord.objects.filter(request_id=request_id)
            )
            usage = (
                UsageRecord.objects.filter(call_id=run_id)
                if run_id
                else UsageRecord.objects.filter(request_id=request_id)
            )
            return list(audits), list(usage)

    audits, usage = wait_for(lambda: all(find()) and find())
    assert len(audits) == 1 and len(usage) == 1
    return audits[0]


CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
TICKET = {"input": {"subject": "s", "body": "b"}}


def test_success(call, tenant_a):
    response = call("/v1/chat/completions", CHAT)
    assert _one_record_each(tenant_a, run_id=response.json()["id"]).status == "ok"


def test_stream(call, tenant_a):
    response = call("/v1/chat/completions", {**CHAT, "stream": True})
    record = _one_record_each(tenant_a, request_id=response.headers["X-Request-Id"])
    assert record.mode == "stream" and record.status == "ok" and record.raw_output


def test_fallback(call, tenant_a, simulator):
    simulator.set_fault("status", status=500)
    response = call("/v1/chat/completions", CHAT)
    assert _one_record_each(tenant_a, run_id=response.json()["id"]).fallback_used


def test_degraded(call, tenant_a, simulator, simulator_b):
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = call("/api/v1/features/summarizer/runs", {"input": {"conversation": "x"}})
    assert _one_record_each(tenant_a, run_id=response.json()["id"]).degraded


def test_provider_failure(call, tenant_a, simulator, simulator_b):
    simulator.set_fault("down")
    simulator_b.set_fault("status", status=500)
    response = call("/v1/chat/completions", CHAT)
    assert response.status_code == 503
    record = _one_record_each(tenant_a, request_id=response.headers["X-Request-Id"])
    assert record.status == "failed" and record.error_type == "upstream_error"


def test_invalid_output(call, tenant_a, simulator, simulator_b):
    simulator.script(['{"label": "x"}'] * 2)
    simulator_b.script([{"tool_input": {"label": "y"}}] * 2)
    response = call("/api/v1/features/ticket-classifier/runs", TICKET)
    assert response.status_code == 422
    record = _one_record_each(tenant_a, request_id=response.headers["X-Request-Id"])
    assert record.error_type == "output_validation_error"


def test_quota_refusal(call, tenant_a):
    from tenants import services

    services.update_tenant_settings(
        tenant=tenant_a.tenant, limit_overrides={"monthly_token_limit": 1}
    )
    from usage.services import forget_limits

    forget_limits(tenant_a.tenant)
    try:
        response = call("/v1/chat/completions", CHAT)
    finally:
        services.update_tenant_settings(tenant=tenant_a.tenant, limit_overrides={})
        forget_limits(tenant_a.tenant)
    assert response.status_code == 429
    record = _one_record_each(tenant_a, request_id=response.headers["X-Request-Id"])
    assert record.status == "refused" and record.error_type == "quota_error"
