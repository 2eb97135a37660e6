"""Bad uploads, end to end with a real Celery worker: too big (413), wrong type (415) and an
empty file (400) are refused and store nothing; a corrupt PDF, a blank file and a binary file
are stored and marked failed with their reason. None of it affects anything else: the good
documents of the same batch and one uploaded after are ingested by the same worker, and
another tenant's documents do not change."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from retrieval.models import Chunk, Document
from tests.fixtures_shared import wait_until

pytestmark = pytest.mark.slow

GOOD = b"# Exports\n\nExport every project as CSV from the admin page.\n"
LATER = b"# Invoices\n\nInvoices are e-mailed on the first of the month.\n"


def _upload(client, key: str, name: str, content: bytes, content_type: str):
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post("/api/v1/documents", {"file": upload}, HTTP_AUTHORIZATION=f"Bearer {key}")


def _snapshot(schema: str) -> tuple:
    with schema_context(schema):
        return (
            sorted(Document.objects.values_list("id", "status", "current_version")),
            sorted(Chunk.objects.values_list("id", "text")),
        )


def test_bad_uploads_are_refused_or_failed_and_affect_nothing_else(
    fresh_tenant, tenants, celery_worker, client, settings
):
    tenant, key = fresh_tenant
    other = tenants["b"].schema
    other_before = _snapshot(other)
    settings.SWITCHBOARD_MAX_DOCUMENT_BYTES = 5000

    refused = {
        "too big": (_upload(client, key, "big.txt", b"word " * 2000, "text/plain"), 413),
        "wrong type": (_upload(client, key, "photo.png", b"\x89PNG\r\n", "image/png"), 415),
        "empty": (_upload(client, key, "empty.md", b"", "text/markdown"), 400),
    }
    for label, (response, status) in refused.items():
        assert response.status_code == status, (label, response.content)
        error = response.json()["error"]
        assert error["message"] and error["code"], label
    assert refused["too big"][0].json()["error"]["code"] == "payload_too_large"
    assert refused["wrong type"][0].json()["error"]["code"] == "unsupported_media_type"
    assert refused["empty"][0].json()["error"]["param"] == "file"

    stored = {
        "good": _upload(client, key, "exports.md", GOOD, "text/markdown"),
        "corrupt pdf": _upload(
            client, key, "report.pdf", b"%PDF-1.7\n1 0 obj garbage", "application/pdf"
        ),
        "blank": _upload(client, key, "blank.txt", b"  \n\n\t \n", "text/plain"),
        "binary": _upload(client, key, "notes.txt", b"\x00\x01\x02\x03 binary", "text/plain"),
    }
    ids = {}
    for label, response in stored.items():
        assert response.status_code == 201, (label, response.content)
        ids[label] = response.json()["id"]

    celery_worker()

    def settled():
        with schema_context(tenant.schema_name):
            return not Document.objects.filter(status__in=["queued", "processing"]).exists()

    assert wait_until(settled, timeout=120), "the worker did not finish the batch"
    # The worker is still taking documents after the failures.
    later = _upload(client, key, "invoices.md", LATER, "text/markdown")
    assert later.status_code == 201
    ids["later"] = later.json()["id"]
    assert wait_until(settled, timeout=60)

    def get(document_id: int) -> dict:
        response = client.get(
            f"/api/v1/documents/{document_id}", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert response.status_code == 200
        return response.json()

    reasons = {
        "corrupt pdf": "The PDF could not be read",
        "blank": "The document contains no text",
        "binary": "binary",
    }
    for label, reason in reasons.items():
        body = get(ids[label])
        assert body["status"] == "failed", label
        assert reason in body["failure_reason"], (label, body["failure_reason"])
        assert body["version"] == 0
    for label in ("good", "later"):
        body = get(ids[label])
        assert (body["status"], body["version"], body["failure_reason"]) == ("ready", 1, "")

    with schema_context(tenant.schema_name):
        assert Document.objects.count() == 5  # the refused uploads stored nothing
        assert set(Chunk.objects.values_list("document_id", flat=True)) == {
            ids["good"],
            ids["later"],
        }
    failed = client.get("/api/v1/documents?status=failed", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert {d["id"] for d in failed.json()["data"]} == {ids[label] for label in reasons}
    found = client.post(
        "/api/v1/search",
        {"query": "export projects as CSV"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    ).json()
    assert found["results"][0]["document_id"] == ids["good"]
    assert _snapshot(other) == other_before
