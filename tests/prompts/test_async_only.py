"""Async-only features: a run without a mode becomes a job (202), sync and stream are refused
with a clear 400 before anything is called; editors switch it in the console, viewers cannot."""

import pytest

from jobs.models import Job
from prompts.models import ChangeLogEntry, Feature

pytestmark = pytest.mark.django_db

TICKET = {"subject": "Refund please", "body": "I was charged twice in March."}


@pytest.fixture
def async_only(tenant_a, routing):
    with tenant_a.context():  # rolled back with the test
        Feature.objects.update(model_alias="chat")
        Feature.objects.filter(slug="ticket-classifier").update(async_only=True)


def _run(client, tenant, body):
    return client.post(
        "/api/v1/features/ticket-classifier/runs",
        body,
        content_type="application/json",
        **tenant.headers(),
    )


def test_a_run_without_a_mode_becomes_a_job(client, tenant_a, async_only, simulator):
    before = simulator.request_count()
    response = _run(client, tenant_a, {"input": TICKET, "user": "u-1"})
    assert response.status_code == 202, response.content
    with tenant_a.context():
        job = Job.objects.get(pk=response.json()["job_id"])
    assert job.feature == "ticket-classifier" and job.status == "queued"
    assert _run(client, tenant_a, {"input": TICKET, "mode": "async"}).status_code == 202
    assert simulator.request_count() == before  # nothing called in the request


@pytest.mark.parametrize("mode", ["sync", "stream"])
def test_sync_and_stream_are_refused(client, tenant_a, async_only, simulator, mode):
    before = simulator.request_count()
    response = _run(client, tenant_a, {"input": TICKET, "mode": mode})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "feature_async_only" and error["param"] == "mode"
    assert simulator.request_count() == before


def test_other_features_keep_answering_sync(client, tenant_a, async_only, simulator):
    response = client.post(
        "/api/v1/features/summarizer/runs",
        {"input": {"conversation": "Customer: it broke."}},
        content_type="application/json",
        **tenant_a.headers(),
    )
    assert response.status_code == 200, response.content


def test_editor_switches_the_run_mode_and_viewer_cannot(staff, tenant_a):
    url = f"/t/{tenant_a.slug}/prompts/ticket-classifier/run-mode/"
    assert staff("viewer").post(url, {"async_only": "on"}).status_code == 403
    editor = staff("editor")
    response = editor.post(url, {"async_only": "on", "reason": "long documents"})
    assert response.status_code == 302
    with tenant_a.context():
        feature = Feature.objects.get(slug="ticket-classifier")
        assert feature.async_only is True
        change = feature.changes.filter(action=ChangeLogEntry.Action.RUN_MODE).first()
        assert change.before == {"async_only": False} and change.after == {"async_only": True}
        assert change.reason == "long documents"
    page = editor.get(f"/t/{tenant_a.slug}/prompts/ticket-classifier/").content.decode()
    assert "async only" in page
    editor.post(url, {})  # unchecked
    with tenant_a.context():
        assert Feature.objects.get(slug="ticket-classifier").async_only is False
