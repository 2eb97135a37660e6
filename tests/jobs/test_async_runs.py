"""Async feature runs: 202 at once, completion through a real Celery worker, SSE events that
resume after Last-Event-ID, cancellation, and a worker killed mid-job."""

import signal
import time

import httpx
import pytest

from audit.models import AuditRecord
from jobs.models import Job
from prompts.models import Feature
from tests.fixtures_shared import wait_until
from usage.models import BudgetCounter, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

TICKET = {"subject": "Refund", "body": "I was charged twice."}


@pytest.fixture
def api(asgi_server, tenant_a, routing):
    with tenant_a.context():
        Feature.objects.update(model_alias="chat")

    class Api:
        url = asgi_server.url
        headers = {"Authorization": f"Bearer {tenant_a.key}"}

        def post(self, path, body=None):
            return httpx.post(asgi_server.url + path, json=body, headers=self.headers, timeout=30)

        def get(self, path, **kw):
            return httpx.get(asgi_server.url + path, headers={**self.headers, **kw}, timeout=30)

    return Api()


def _job(tenant, job_id):
    with tenant.context():
        return Job.objects.get(pk=job_id)


def test_async_run_answers_202_without_the_provider_and_completes(
    api, tenant_a, simulator, celery_worker
):
    started = time.monotonic()
    response = api.post(
        "/api/v1/features/ticket-classifier/runs",
        {"input": TICKET, "mode": "async", "user": "u-async"},
    )
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 2
    body = response.json()
    assert body["status"] == "queued" and body["status_url"].endswith(body["job_id"])
    assert simulator.request_count() == 0  # no provider call in the request
    celery_worker()
    job = wait_until(
        lambda: (
            _job(tenant_a, body["job_id"]).status == "succeeded" and _job(tenant_a, body["job_id"])
        )
    )
    assert job and job.result["output"] == {"label": "billing"}
    status = api.get(body["status_url"]).json()
    assert status["status"] == "succeeded" and status["result"]["id"] == job.call_id
    with tenant_a.context():
        assert UsageRecord.objects.filter(call_id=job.call_id, mode="async").count() == 1
        assert AuditRecord.objects.filter(call_id=job.call_id).count() == 1


def test_events_arrive_in_order_and_resume_after_last_event_id(api, tenant_a, celery_worker):
    job_id = api.post(
        "/api/v1/features/ticket-classifier/runs", {"input": TICKET, "mode": "async"}
    ).json()["job_id"]
    celery_worker()
    # generous: a loaded CI machine starts the worker process slowly
    assert wait_until(lambda: _job(tenant_a, job_id).status == "succeeded", timeout=90)
    stream = api.get(f"/api/v1/jobs/{job_id}/events").text
    events = [block for block in stream.split("\n\n") if block.strip()]
    ids = [int(b.split("\n")[0].removeprefix("id: ")) for b in events]
    names = [b.split("\n")[1].removeprefix("event: ") for b in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert names[0] == "status" and "result" in names and names[-1] == "status"
    assert '"succeeded"' in events[-1]
    resumed = api.get(f"/api/v1/jobs/{job_id}/events", **{"Last-Event-ID": str(ids[1])}).text
    resumed_ids = [
        int(b.split("\n")[0].removeprefix("id: ")) for b in resumed.split("\n\n") if b.strip()
    ]
    assert resumed_ids == ids[2:]


def test_bad_async_requests(api):
    assert (
        api.post(
            "/api/v1/features/ticket-classifier/runs", {"input": {"subject": "x"}, "mode": "async"}
        ).status_code
        == 400
    )
    assert api.post("/api/v1/features/nope/runs", {"input": {}, "mode": "async"}).status_code == 404
    assert api.get("/api/v1/jobs/not-a-uuid").status_code == 404
    assert api.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404


def test_cancel_before_a_worker_takes_it(api, tenant_a, simulator, celery_worker):
    job_id = api.post(
        "/api/v1/features/ticket-classifier/runs", {"input": TICKET, "mode": "async"}
    ).json()["job_id"]
    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    celery_worker()
    time.sleep(3)
    assert _job(tenant_a, job_id).status == "cancelled"
    assert simulator.request_count() == 0


def test_a_job_of_another_tenant_is_404(api, tenant_b):
    job_id = api.post(
        "/api/v1/features/ticket-classifier/runs", {"input": TICKET, "mode": "async"}
    ).json()["job_id"]
    status = httpx.get(
        f"{api.url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {tenant_b.key}"}
    )
    assert status.status_code == 404


def test_a_worker_killed_mid_job_is_retried_and_recorded_once(
    api, tenant_a, simulator, celery_worker, settings
):
    settings.SWITCHBOARD_JOB_LEASE_SECONDS = 2
    simulator.set_fault("latency", seconds=4, count=1, path="/v1/chat/completions")
    job_id = api.post(
        "/api/v1/features/ticket-classifier/runs",
        {"input": TICKET, "mode": "async", "user": "u-kill"},
    ).json()["job_id"]
    first = celery_worker()
    assert wait_until(lambda: simulator.request_count("/v1/chat/completions") == 1)
    first.send_signal(signal.SIGKILL)  # mid-call: the provider has the request, no answer yet
    first.wait(timeout=10)
    assert _job(tenant_a, job_id).status == "running"
    time.sleep(2.2)  # the dead worker's lease runs out
    from jobs.services import recover_stale_jobs

    with tenant_a.context():
        assert recover_stale_jobs() == 1
    celery_worker()
    job = wait_until(
        lambda: _job(tenant_a, job_id).status == "succeeded" and _job(tenant_a, job_id)
    )
    assert job and job.attempts == 2
    assert simulator.request_count("/v1/chat/completions") == 2
    with tenant_a.context():
        usage = UsageRecord.objects.filter(call_id=job.call_id)
        assert usage.count() == 1 and usage.get().status == "ok"
        assert AuditRecord.objects.filter(call_id=job.call_id).count() == 1
        counter = (
            BudgetCounter.objects.get(scope_key="end_user:u-kill")
            if BudgetCounter.objects.filter(scope_key="end_user:u-kill").exists()
            else None
        )
        tenant_counter = BudgetCounter.objects.get(scope_key="tenant", period=timezone_period())
    assert counter is None  # no end-user budget configured: nothing tracked there
    assert tenant_counter.tokens_reserved >= 0


def timezone_period():
    from django.utils import timezone

    return timezone.now().strftime("%Y-%m")
