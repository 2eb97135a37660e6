"""``Idempotency-Key`` on ``POST /api/v1/documents`` (the project's idempotency, as for runs and
jobs): a retry gets the first answer again, the same key with another body or another file is a
409, and so is a retry while the first request is still being stored."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import IdempotencyKey
from retrieval.models import Document

pytestmark = pytest.mark.django_db

ARTICLE = "# Exports\n\nExport every project as CSV from the admin page.\n"


def _post_json(client, tenant, key: str | None, **body):
    payload = {"title": "Exports", "text": ARTICLE, "media_type": "text/markdown", **body}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        "/api/v1/documents",
        payload,
        content_type="application/json",
        **tenant.headers(),
        **headers,
    )


def _post_file(client, tenant, key: str, name: str, content: bytes, **fields):
    upload = SimpleUploadedFile(name, content, content_type="text/markdown")
    return client.post(
        "/api/v1/documents",
        {"file": upload, **fields},
        **tenant.headers(),
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_retry_with_the_same_key_replays_the_first_answer(client, tenant_a):
    first = _post_json(client, tenant_a, "upload-1", metadata={"lang": "en"})
    assert first.status_code == 201, first.content
    again = _post_json(client, tenant_a, "upload-1", metadata={"lang": "en"})
    assert again.status_code == 201  # the first answer, not "already stored" (200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    with tenant_a.context():
        assert Document.objects.count() == 1


def test_same_key_with_another_body_is_409(client, tenant_a):
    assert _post_json(client, tenant_a, "upload-2").status_code == 201
    other = _post_json(client, tenant_a, "upload-2", text="# Other\n\nSomething else.")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    with tenant_a.context():
        assert Document.objects.count() == 1


@pytest.mark.parametrize("memory_limit", [None, 10], ids=["in-memory", "temporary-file"])
def test_same_key_with_another_file_of_the_same_name_is_409(
    client, tenant_a, settings, memory_limit
):
    if memory_limit is not None:
        settings.FILE_UPLOAD_MAX_MEMORY_SIZE = memory_limit  # streamed to a temporary file
    first = _post_file(client, tenant_a, "upload-3", "guide.md", ARTICLE.encode())
    assert first.status_code == 201, first.content
    replay = _post_file(client, tenant_a, "upload-3", "guide.md", ARTICLE.encode())
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    other = _post_file(client, tenant_a, "upload-3", "guide.md", b"# Other\n\nNew text.")
    assert other.status_code == 409, other.content
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    changed_fields = _post_file(
        client, tenant_a, "upload-3", "guide.md", ARTICLE.encode(), access_tags="staff"
    )
    assert changed_fields.status_code == 409
    with tenant_a.context():
        assert Document.objects.count() == 1


def test_retry_while_the_first_is_being_stored_is_409(client, tenant_a):
    # What the first request leaves while it runs: its key claimed, no answer yet.
    body = {"title": "Exports", "text": ARTICLE, "media_type": "text/markdown"}
    first = _post_json(client, tenant_a, "upload-4")
    assert first.status_code == 201
    with tenant_a.context():
        IdempotencyKey.objects.filter(key="upload-4").update(status_code=None, response=None)
    again = client.post(
        "/api/v1/documents",
        json.dumps(body),
        content_type="application/json",
        **tenant_a.headers(),
        HTTP_IDEMPOTENCY_KEY="upload-4",
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "idempotency_in_progress"


def test_refused_upload_can_be_retried_with_the_same_key(client, tenant_a, settings):
    settings.SWITCHBOARD_MAX_DOCUMENT_BYTES = 10
    refused = _post_json(client, tenant_a, "upload-5")
    assert refused.status_code == 413
    settings.SWITCHBOARD_MAX_DOCUMENT_BYTES = 10_000
    retried = _post_json(client, tenant_a, "upload-5")
    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried


def test_keys_are_per_tenant(client, tenant_a, tenant_b):
    a = _post_json(client, tenant_a, "shared-key")
    b = _post_json(client, tenant_b, "shared-key", text="# B\n\nTenant B's own text.")
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b
    with tenant_b.context():
        assert Document.objects.get().title == "Exports"


def test_body_over_the_limit_is_413_also_with_a_key(client, tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = _post_json(client, tenant_a, "upload-6", text="word " * 1000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
