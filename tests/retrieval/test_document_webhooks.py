"""``document.*`` webhook events: document.ready and document.failed when an ingestion ends,
document.deleted on delete, each once (a redelivered task sends nothing again), only to the
endpoints that asked, with the document's id, status and reason but never its content."""

import pytest

from jobs import webhooks
from jobs.models import WebhookDelivery
from retrieval import services

pytestmark = pytest.mark.django_db

GUIDE = "# Billing\n\nInvoices are emailed on the first day of each month."


@pytest.fixture
def endpoints(tenant_a, settings):
    settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = True
    with tenant_a.context():
        documents, _ = webhooks.create_endpoint(
            url="http://127.0.0.1:9/documents",
            events=["document.ready", "document.failed", "document.deleted"],
        )
        jobs_only, _ = webhooks.create_endpoint(
            url="http://127.0.0.1:9/jobs", events=["job.failed"]
        )
        everything, _ = webhooks.create_endpoint(url="http://127.0.0.1:9/all")
    return documents, jobs_only, everything


def _events(endpoint) -> list[tuple[str, dict]]:
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id")
    return [(d.event, d.payload["data"]) for d in deliveries]


def test_ready_document_sends_document_ready_once(tenant_a, endpoints, add_document):
    documents, jobs_only, everything = endpoints
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
        (event, data), *rest = _events(documents)
        assert rest == []
        assert event == "document.ready"
        assert data["document_id"] == document.id
        assert (data["status"], data["version"], data["chunks"]) == ("ready", 1, 1)
        assert data["title"] == "Billing guide" and data["failure_reason"] == ""
        assert data["url"] == f"/api/v1/documents/{document.id}"
        assert "Invoices are emailed" not in str(data)  # never the content
        assert [e for e, _ in _events(everything)] == ["document.ready"]
        assert _events(jobs_only) == []
        # A redelivered task message for the same version changes nothing and sends nothing.
        outcome = services.ingest_document(document_id=document.id, version=1)
        assert outcome.status == "superseded"
        assert len(_events(documents)) == 1


def test_unreadable_document_sends_document_failed_with_its_reason(
    tenant_a, endpoints, add_document
):
    documents, _, _ = endpoints
    with tenant_a.context():
        document = add_document(b"%PDF-1.7 garbage", title="Broken", media_type="application/pdf")
        assert document.status == "failed"
        [(event, data)] = _events(documents)
        assert event == "document.failed"
        assert data["status"] == "failed" and data["document_id"] == document.id
        assert "PDF could not be read" in data["failure_reason"]
        assert data["version"] == 0  # nothing searchable
        services.ingest_document(document_id=document.id, version=1)
        assert len(_events(documents)) == 1


def test_reingest_sends_ready_again_for_the_new_version(tenant_a, endpoints, add_document):
    documents, _, _ = endpoints
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
        queued = services.reingest_document(document=document)
        services.ingest_document(document_id=document.id, version=queued.ingesting_version)
        assert [(e, d["version"]) for e, d in _events(documents)] == [
            ("document.ready", 1),
            ("document.ready", 2),
        ]


def test_delete_sends_document_deleted(tenant_a, endpoints, add_document):
    documents, _, _ = endpoints
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
        services.delete_document(document=document)
        event, data = _events(documents)[-1]
        assert event == "document.deleted"
        assert (data["document_id"], data["status"]) == (document.id, "deleted")
        services.delete_document(document=document)  # already gone: no second event
        assert [e for e, _ in _events(documents)].count("document.deleted") == 1


def test_document_events_can_be_subscribed_to(client, tenant_a, settings):
    settings.SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE = True
    response = client.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["document.deleted", "document.ready"]},
        content_type="application/json",
        **tenant_a.headers(),
    )
    assert response.status_code == 201, response.content
    unknown = client.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["document.exploded"]},
        content_type="application/json",
        **tenant_a.headers(),
    )
    assert unknown.status_code == 400
