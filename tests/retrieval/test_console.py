"""The documents console: list with live status, upload by editors only, chunk viewer with
heading and page, delete and re-ingest, and the search playground's side-by-side ranks."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from retrieval.models import Document

pytestmark = [pytest.mark.django_db]

GUIDE = "# Billing\n\nInvoices are emailed monthly.\n\n## Refunds\n\nRefunds take ten days."


def _base(tenant) -> str:
    return f"/t/{tenant.slug}/documents/"


def test_viewer_reads_but_cannot_change(staff, tenant_a, add_document):
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
    viewer = staff("viewer")
    page = viewer.get(_base(tenant_a))
    assert page.status_code == 200
    assert b"Billing guide" in page.content
    assert b"Add a document" not in page.content
    assert viewer.post(_base(tenant_a) + "add/", {"text": "x"}).status_code == 403
    assert viewer.post(_base(tenant_a) + f"{document.id}/delete/").status_code == 403
    assert viewer.post(_base(tenant_a) + f"{document.id}/reingest/").status_code == 403
    with tenant_a.context():
        assert Document.objects.filter(pk=document.id).exists()


def test_editor_uploads_and_list_polls_while_queued(staff, tenant_a):
    editor = staff("editor")
    upload = SimpleUploadedFile("guide.md", GUIDE.encode(), content_type="text/markdown")
    response = editor.post(
        _base(tenant_a) + "add/",
        {"title": "", "file": upload, "metadata": '{"product": "crm"}', "access_tags": "staff"},
    )
    assert response.status_code == 302
    with tenant_a.context():
        document = Document.objects.get()
    assert (document.title, document.metadata, document.access_tags) == (
        "guide.md",
        {"product": "crm"},
        ["staff"],
    )
    rows = editor.get(_base(tenant_a) + "?partial=rows", HTTP_HX_REQUEST="true")
    assert rows.status_code == 200
    assert b'hx-trigger="every 2s"' in rows.content
    assert b"<html" not in rows.content


def test_editor_upload_errors_are_shown(staff, tenant_a, settings):
    editor = staff("editor")
    bad_type = SimpleUploadedFile("a.exe", b"MZ", content_type="application/x-msdownload")
    page = editor.post(_base(tenant_a) + "add/", {"file": bad_type}, follow=True)
    assert b"Unsupported media type" in page.content
    page = editor.post(_base(tenant_a) + "add/", {"metadata": "[1]", "text": "x"}, follow=True)
    assert b"Metadata must be a JSON object" in page.content
    with tenant_a.context():
        assert not Document.objects.exists()


def test_chunk_viewer_shows_heading_path_and_status(staff, tenant_a, add_document):
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
    page = staff("reviewer").get(_base(tenant_a) + f"{document.id}/")
    assert page.status_code == 200
    assert "Billing › Refunds".encode() in page.content
    assert b"Refunds take ten days." in page.content
    assert b'class="pill ok">ready' in page.content
    assert b"every 2s" not in page.content  # nothing to poll once ready


def test_editor_reingests_and_deletes(staff, tenant_a, add_document):
    with tenant_a.context():
        document = add_document(GUIDE, title="Billing guide")
    editor = staff("editor")
    assert editor.post(_base(tenant_a) + f"{document.id}/reingest/").status_code == 302
    with tenant_a.context():
        document.refresh_from_db()
        assert (document.status, document.ingesting_version) == ("queued", 2)
    assert editor.post(_base(tenant_a) + f"{document.id}/delete/").status_code == 302
    with tenant_a.context():
        assert not Document.objects.filter(pk=document.id).exists()


def test_playground_shows_each_retrievers_ranks(staff, tenant_a, add_document):
    with tenant_a.context():
        add_document(GUIDE, title="Billing guide")
    viewer = staff("viewer")
    page = viewer.get(_base(tenant_a) + "search/", {"query": "refunds", "top_k": 3})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="fused"' in html and 'id="lexical"' in html and 'id="vector"' in html
    assert "Billing › Refunds" in html
    fragment = viewer.get(
        _base(tenant_a) + "search/", {"query": "x", "filters": "[]"}, HTTP_HX_REQUEST="true"
    )
    assert b"Filters must be a JSON object" in fragment.content
    assert b"<html" not in fragment.content


def test_other_tenants_console_is_closed(staff, tenant_b):
    assert staff("admin", tenant_key="a").get(_base(tenant_b)).status_code in (403, 404)


def test_editor_uploads_several_files_at_once_each_on_its_own(staff, tenant_a):
    editor = staff("editor")
    files = [
        SimpleUploadedFile("billing.md", GUIDE.encode(), content_type="text/markdown"),
        SimpleUploadedFile("virus.exe", b"MZ", content_type="application/x-msdownload"),
        SimpleUploadedFile("notes.txt", b"Plain notes about refunds.", content_type="text/plain"),
    ]
    response = editor.post(
        _base(tenant_a) + "add/",
        {"file": files, "title": "ignored for several", "access_tags": "staff"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body  # the rows and the messages, swapped in place
    assert 'id="document-rows"' in body and 'hx-trigger="every 2s"' in body
    assert "billing.md" in body and "notes.txt" in body
    assert "virus.exe: Unsupported media type" in body
    assert 'id="upload-messages"' in body
    with tenant_a.context():
        stored = {d.title: d.access_tags for d in Document.objects.all()}
    assert stored == {"billing.md": ["staff"], "notes.txt": ["staff"]}


def test_document_list_filters_by_type(staff, tenant_a, add_document):
    with tenant_a.context():
        add_document(GUIDE, title="Markdown guide")
        add_document("Plain words.", title="Plain note", media_type="text/plain")
    page = staff("viewer").get(_base(tenant_a) + "?media_type=text/plain")
    assert b"Plain note" in page.content and b"Markdown guide" not in page.content
    assert b'<input type="file" name="file" multiple' not in page.content  # viewers: no upload
    editor_page = staff("editor").get(_base(tenant_a))
    assert b"multiple" in editor_page.content and b"upload-progress" in editor_page.content
