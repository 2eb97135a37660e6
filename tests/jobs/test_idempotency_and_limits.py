"""Idempotency keys, the per-tenant cap on jobs in flight, and job deadlines."""

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job
from prompts.models import Feature
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
TICKET = {"subject": "Refund", "body": "I was charged twice."}


@pytest.fixture
def post(asgi_server, tenant_a, routing):
    with tenant_a.context():
        Feature.objects.update(model_alias="chat")

    def send(body, key=None):
        headers = {"Authorization": f"Bearer {tenant_a.key}"}
        if key:
            headers["Idempotency-Key"] = key
        return httpx.post(
            f"{asgi_server.url}/api/v1/features/ticket-classifier/runs",
            json=body,
            headers=headers,
            timeout=30,
        )

    return send


def test_same_key_and_body_returns_the_first_answer_once_charged(post, simulator, tenant_a):
    first = post({"input": TICKET, "user": "idem"}, key="key-1")
    again = post({"input": TICKET, "user": "idem"}, key="key-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert simulator.request_count("/v1/chat/completions") == 1
    with tenant_a.context():
        from tests.fixtures_gateway import wait_for

        assert wait_for(lambda: UsageRecord.objects.filter(call_id=first.json()["id"]).exists())
        assert UsageRecord.objects.filter(end_user="idem").count() == 1


def test_same_key_with_another_body_is_409(post):
    assert post({"input": TICKET}, key="key-2").status_code == 200
    conflict = post({"input": {**TICKET, "body": "different"}}, key="key-2")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"


def test_async_job_with_a_key_is_created_once(post, tenant_a):
    one = post({"input": TICKET, "mode": "async"}, key="key-3")
    two = post({"input": TICKET, "mode": "async"}, key="key-3")
    assert one.status_code == two.status_code == 202
    assert one.json()["job_id"] == two.json()["job_id"]
    with tenant_a.context():
        assert Job.objects.filter(pk=one.json()["job_id"]).count() == 1


def test_a_failed_first_attempt_can_be_retried_with_the_key(post):
    assert post({"input": {"subject": "x"}}, key="key-4").status_code == 400
    assert post({"input": TICKET}, key="key-4").status_code == 200


def test_per_tenant_cap_on_jobs_in_flight(post, settings, tenant_a):
    with tenant_a.context():
        waiting = Job.objects.filter(status__in=["queued", "running"]).count()
    settings.SWITCHBOARD_MAX_JOBS_IN_FLIGHT = waiting + 1

    first = post({"input": TICKET, "mode": "async"})
    assert first.status_code == 202
    capped = post({"input": TICKET, "mode": "async"})
    assert capped.status_code == 429
    assert capped.json()["error"]["code"] == "too_many_jobs" and capped.headers["Retry-After"]


def test_a_job_past_its_deadline_fails_clearly(post, tenant_a, simulator):
    job_id = post({"input": TICKET, "mode": "async"}).json()["job_id"]
    with tenant_a.context():
        Job.objects.filter(pk=job_id).update(deadline_at=timezone.now() - timedelta(seconds=1))
        services.run_job(tenant_a.tenant, job_id)
        job = Job.objects.get(pk=job_id)
    assert job.status == "failed" and job.error["code"] == "job_deadline_exceeded"
    assert simulator.request_count() == 0
