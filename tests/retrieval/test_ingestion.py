"""Ingestion run directly (the Celery task's body): chunks with heading paths and pages, vectors
in the installation's space, tsvectors; unreadable documents fail alone; a crash mid-document
resumes without duplicates; re-ingest, delete and lost workers."""

from datetime import timedelta
from io import BytesIO

import pytest
from django.utils import timezone

from retrieval import services
from retrieval.embedding import embedding_space
from retrieval.models import Chunk, Document

from .conftest import DownEmbedder

pytestmark = pytest.mark.django_db

GUIDE = """# Billing

Invoices are emailed on the first day of each month.

## Refunds

Yearly plans are refunded within 30 days.

# Security

Two-factor authentication protects every account.
"""


def _pdf(pages: list[str]) -> bytes:
    """A real PDF with one text line per page (reportlab is not installed; pypdf writes it)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_markdown_becomes_chunks_with_heading_paths(tenant_a, add_document):
    with tenant_a.context():
        document = add_document(GUIDE, title="Guide")
        assert (document.status, document.current_version) == ("ready", 1)
        assert document.chunks_done == document.chunks_total == 3
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
        assert [c.heading_path for c in chunks] == [
            ["Billing"],
            ["Billing", "Refunds"],
            ["Security"],
        ]
        assert all(c.embedder == embedding_space() for c in chunks)
        assert all(len(c.embedding) == 384 for c in chunks)
        assert "refund" in chunks[1].search_vector
        # cl100k_base tokens of "Yearly plans are refunded within 30 days." (the approximation says 12)
        assert chunks[1].token_count == 10


def test_pdf_pages_are_kept_for_citations(tenant_a, add_document):
    with tenant_a.context():
        document = add_document(
            _pdf(["Invoices arrive monthly.", "Refunds take ten days."]),
            title="Manual",
            media_type="application/pdf",
        )
        assert document.status == "ready", document.failure_reason
        chunks = Chunk.objects.filter(document=document).order_by("ordinal")
        assert [(c.page, c.text) for c in chunks] == [
            (1, "Invoices arrive monthly."),
            (2, "Refunds take ten days."),
        ]


def test_html_headings_and_paragraphs(tenant_a, add_document):
    html = (
        "<html><head><script>var x=1;</script></head><body><nav>Menu</nav><h1>Plans</h1>"
        "<p>The Team plan costs $9.</p><h2>Trials</h2><ul><li>Trials last 14 days.</li></ul>"
        "</body></html>"
    )
    with tenant_a.context():
        document = add_document(html, title="Plans", media_type="text/html")
        chunks = Chunk.objects.filter(document=document).order_by("ordinal")
        assert [(c.heading_path, c.text) for c in chunks] == [
            (["Plans"], "The Team plan costs $9."),
            (["Plans", "Trials"], "Trials last 14 days."),
        ]


@pytest.mark.parametrize(
    ("content", "media_type", "reason"),
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", "application/pdf", "PDF could not"),
        (b"   \n\n  ", "text/plain", "no text"),
        (b"<html><body><script>x()</script></body></html>", "text/html", "no text"),
        (b"\x00\x01\x02binary", "text/plain", "binary"),
    ],
)
def test_unreadable_document_fails_with_reason_and_nothing_else_changes(
    tenant_a, add_document, content, media_type, reason
):
    with tenant_a.context():
        good = add_document(GUIDE, title="Guide")
        before = set(Chunk.objects.values_list("id", flat=True))
        bad = add_document(content, title="Bad", media_type=media_type)
        assert bad.status == "failed"
        assert reason in bad.failure_reason
        assert bad.current_version == 0
        assert set(Chunk.objects.values_list("id", flat=True)) == before
        good.refresh_from_db()
        assert good.status == "ready"


class CrashingEmbedder:
    """The local embedder, but the worker "dies" (an exception escapes) after ``calls`` batches."""

    def __init__(self, calls: int) -> None:
        from retrieval.embedders.local import get_local_embedder

        self.inner = get_local_embedder()
        self.name = self.inner.name
        self.dimensions = self.inner.dimensions
        self.calls = calls

    def embed(self, texts):
        if self.calls == 0:
            raise SystemExit("worker killed")
        self.calls -= 1
        return self.inner.embed(texts)


def _long_markdown(sections: int) -> str:
    return "\n\n".join(
        f"## Section {i}\n\nParagraph {i} explains setting number {i} in detail."
        for i in range(sections)
    )


def test_crash_mid_document_resumes_without_duplicates(tenant_a):
    with tenant_a.context():
        document, _ = services.create_document(
            title="Long", content=_long_markdown(20).encode(), media_type="text/markdown"
        )
        with pytest.raises(SystemExit):
            services.ingest_document(
                document_id=document.id, version=1, batch_size=3, embedder=CrashingEmbedder(2)
            )
        document.refresh_from_db()
        assert (document.status, document.chunks_done, document.current_version) == (
            "processing",
            6,
            0,
        )
        # The lease still holds: a second delivery backs off instead of racing the first.
        assert services.ingest_document(document_id=document.id, version=1).status == "leased"
        later = timezone.now() + timedelta(seconds=services.DEFAULT_LEASE_SECONDS + 1)
        outcome = services.ingest_document(document_id=document.id, version=1, now=later)
        assert outcome.status == "ready"
        document.refresh_from_db()
        assert (document.status, document.chunks_done, document.attempts) == ("ready", 20, 2)
        ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
        assert sorted(ordinals) == list(range(20))
        # Running it again is a no-op.
        assert services.ingest_document(document_id=document.id, version=1).status == "superseded"
        assert Chunk.objects.filter(document=document).count() == 20


def test_recovery_requeues_documents_whose_worker_died(
    tenant_a, django_capture_on_commit_callbacks
):
    with tenant_a.context():
        document, _ = services.create_document(
            title="Long", content=_long_markdown(4).encode(), media_type="text/markdown"
        )
        with pytest.raises(SystemExit):
            services.ingest_document(
                document_id=document.id, version=1, batch_size=1, embedder=CrashingEmbedder(1)
            )
        assert services.recover_stalled_ingestions() == []  # lease still running
        later = timezone.now() + timedelta(seconds=services.DEFAULT_LEASE_SECONDS + 1)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert services.recover_stalled_ingestions(now=later) == [(document.id, 1)]
        assert len(callbacks) == 1
        document.refresh_from_db()
        assert document.status == "queued"
        assert services.ingest_document(document_id=document.id, version=1).status == "ready"
        assert Chunk.objects.filter(document=document).count() == 4


def test_gives_up_after_max_attempts(tenant_a):
    with tenant_a.context():
        document, _ = services.create_document(
            title="Doomed", content=b"text", media_type="text/plain"
        )
        Document.objects.filter(pk=document.pk).update(attempts=services.MAX_ATTEMPTS)
        assert services.ingest_document(document_id=document.id, version=1).status == "failed"
        document.refresh_from_db()
        assert document.status == "failed"
        assert "Gave up" in document.failure_reason


def test_reingest_builds_a_new_version_and_drops_the_old(tenant_a, add_document):
    with tenant_a.context():
        document = add_document(GUIDE, title="Guide")
        old = set(Chunk.objects.filter(document=document).values_list("id", flat=True))
        services.reingest_document(document=document)
        document.refresh_from_db()
        assert (document.status, document.current_version, document.ingesting_version) == (
            "queued",
            1,
            2,
        )
        assert services.ingest_document(document_id=document.id, version=2).status == "ready"
        document.refresh_from_db()
        assert document.current_version == 2
        chunks = Chunk.objects.filter(document=document)
        assert set(chunks.values_list("version", flat=True)) == {2}
        assert not old & set(chunks.values_list("id", flat=True))
        # A stale message for version 1 changes nothing.
        assert services.ingest_document(document_id=document.id, version=1).status == "superseded"


def test_document_deleted_mid_ingestion_stops_cleanly(tenant_a):
    class DeletingEmbedder(CrashingEmbedder):
        def embed(self, texts):
            Document.objects.filter(pk=self.document_id).delete()
            return self.inner.embed(texts)

    with tenant_a.context():
        document, _ = services.create_document(
            title="Gone", content=_long_markdown(4).encode(), media_type="text/markdown"
        )
        embedder = DeletingEmbedder(99)
        embedder.document_id = document.id
        outcome = services.ingest_document(
            document_id=document.id, version=1, batch_size=2, embedder=embedder
        )
        assert outcome.status == "superseded"
        assert not Chunk.objects.filter(document_id=document.id).exists()


def test_embedder_down_stores_chunks_for_full_text_then_reembed_fills_vectors(
    tenant_a, add_document
):
    from django.core.management import call_command

    with tenant_a.context():
        document = add_document(GUIDE, title="Guide", embedder=DownEmbedder())
        assert document.status == "ready"
        chunks = Chunk.objects.filter(document=document)
        assert chunks.count() == 3
        assert set(chunks.values_list("embedder", flat=True)) == {""}
        assert services.stale_space_count() == 3
    out = BytesIO()
    import io

    out = io.StringIO()
    call_command("reembed_documents", "--tenant", tenant_a.slug, stdout=out)
    assert "3 chunks" in out.getvalue()
    with tenant_a.context():
        assert services.stale_space_count() == 0
        assert set(chunks.values_list("embedder", flat=True)) == {embedding_space()}
