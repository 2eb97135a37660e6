"""The documents and search API: upload in both shapes, limits (413/415), dedupe, list/get/delete,
re-ingest, search results, and another tenant's ids answering 404."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from retrieval import services
from retrieval.models import Document

pytestmark = [pytest.mark.django_db]

ARTICLE = "# Exports\n\nExport every project as CSV from the admin page.\n"


def _post_text(client, tenant, **body):
    payload = {"title": "Exports", "text": ARTICLE, "media_type": "text/markdown", **body}
    return client.post(
        "/api/v1/documents", payload, content_type="application/json", **tenant.headers()
    )


def _ingest(tenant, document_id):
    with tenant.context():
        document = Document.objects.get(pk=document_id)
        services.ingest_document(document_id=document.id, version=document.ingesting_version)


def test_json_upload_creates_then_same_content_returns_existing(client, tenant_a):
    created = _post_text(client, tenant_a, metadata={"product": "crm"}, access_tags=["staff"])
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "queued"
    assert body["metadata"] == {"product": "crm"}
    assert body["access_tags"] == ["staff"]
    again = _post_text(client, tenant_a, title="Another title")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["title"] == "Exports"
    with tenant_a.context():
        assert Document.objects.count() == 1


def test_upload_queues_ingestion_after_commit(client, tenant_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _post_text(client, tenant_a).status_code == 201
    assert len(callbacks) == 1


def test_multipart_upload_recognises_type_by_extension(client, tenant_a):
    upload = SimpleUploadedFile(
        "guide.md", ARTICLE.encode(), content_type="application/octet-stream"
    )
    response = client.post(
        "/api/v1/documents",
        {"file": upload, "metadata": json.dumps({"lang": "en"}), "access_tags": "a, b"},
        **tenant_a.headers(),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["media_type"], body["title"], body["source"]) == (
        "text/markdown",
        "guide.md",
        "guide.md",
    )
    assert body["metadata"] == {"lang": "en"}
    assert body["access_tags"] == ["a", "b"]


def test_too_big_upload_is_413_and_stores_nothing(client, tenant_a, settings):
    settings.SWITCHBOARD_MAX_DOCUMENT_BYTES = 1000
    upload = SimpleUploadedFile("big.txt", b"x " * 600, content_type="text/plain")
    response = client.post("/api/v1/documents", {"file": upload}, **tenant_a.headers())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _post_text(client, tenant_a, text="y " * 600).status_code == 413
    with tenant_a.context():
        assert not Document.objects.exists()


def test_unsupported_type_is_415(client, tenant_a):
    upload = SimpleUploadedFile(
        "sheet.xlsx", b"PK\x03\x04", content_type="application/vnd.ms-excel"
    )
    response = client.post("/api/v1/documents", {"file": upload}, **tenant_a.headers())
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _post_text(client, tenant_a, media_type="image/png").status_code == 415


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"metadata": "not an object"},
        {"access_tags": "notalist"},
        {"title": "t" * 301},
    ],
)
def test_bad_json_bodies_are_400(client, tenant_a, body):
    response = _post_text(client, tenant_a, **body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_get_list_reingest_delete(client, tenant_a):
    document_id = _post_text(client, tenant_a).json()["id"]
    _ingest(tenant_a, document_id)
    detail = client.get(f"/api/v1/documents/{document_id}", **tenant_a.headers()).json()
    assert detail["status"] == "ready"
    assert detail["version"] == 1
    assert detail["progress"]["chunks_done"] == detail["progress"]["chunks_total"] == 1

    listed = client.get("/api/v1/documents?status=ready", **tenant_a.headers()).json()
    assert [d["id"] for d in listed["data"]] == [document_id]
    assert client.get("/api/v1/documents?status=nope", **tenant_a.headers()).status_code == 400
    assert client.get("/api/v1/documents?limit=0", **tenant_a.headers()).status_code == 400

    reingest = client.post(f"/api/v1/documents/{document_id}/reingest", **tenant_a.headers())
    assert reingest.status_code == 202
    assert reingest.json()["ingesting_version"] == 2
    assert reingest.json()["version"] == 1  # still searchable meanwhile

    deleted = client.delete(f"/api/v1/documents/{document_id}", **tenant_a.headers())
    assert deleted.status_code == 204
    missing = client.get(f"/api/v1/documents/{document_id}", **tenant_a.headers())
    assert missing.status_code == 404


def test_other_tenants_document_is_404(client, tenant_a, tenant_b):
    document_id = _post_text(client, tenant_a).json()["id"]
    for method, path in [
        ("get", f"/api/v1/documents/{document_id}"),
        ("delete", f"/api/v1/documents/{document_id}"),
        ("post", f"/api/v1/documents/{document_id}/reingest"),
    ]:
        response = getattr(client, method)(path, **tenant_b.headers())
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "not_found"
    with tenant_a.context():
        assert Document.objects.filter(pk=document_id, status="queued").exists()


def test_search_returns_chunks_with_sources_and_ranks(client, tenant_a):
    document_id = _post_text(client, tenant_a).json()["id"]
    _ingest(tenant_a, document_id)
    response = client.post(
        "/api/v1/search",
        {"query": "export projects as CSV", "top_k": 3},
        content_type="application/json",
        **tenant_a.headers(),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["degraded"] is False
    hit = body["results"][0]
    assert hit["document_id"] == document_id
    assert hit["title"] == "Exports"
    assert hit["heading_path"] == ["Exports"]
    assert hit["page"] is None
    assert set(hit["retrievers"]) == {"lexical", "vector"}
    assert hit["retrievers"]["lexical"]["rank"] == 1
    assert hit["score"] > 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": ""},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 51},
        {"query": "x", "filters": {"k": {"nested": 1}}},
        {"query": "x", "filters": {"k": []}},
        {"query": "x", "filters": "product"},
        {"query": "x" * 2001},
    ],
)
def test_bad_search_requests_are_400(client, tenant_a, body):
    response = client.post(
        "/api/v1/search", body, content_type="application/json", **tenant_a.headers()
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


def test_documents_api_needs_a_key(client):
    assert client.get("/api/v1/documents").status_code == 401
    assert client.post("/api/v1/search", {}, content_type="application/json").status_code == 401


def test_json_body_over_the_request_limit_is_413(client, tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = _post_text(client, tenant_a, text="word " * 1000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
