"""Writes: adding, re-ingesting and deleting documents; the ingestion itself (run by the Celery
task); recovery of stalled ingestions; re-embedding into a new space; and the retrieval step of
feature runs.

Ingestion is idempotent per document version: chunks are keyed (document, version, ordinal) and
written in committed batches, so a retry after a worker died skips what is already stored. The
new version becomes searchable in one transaction that flips ``current_version`` and drops the
previous version's chunks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import IntegrityError, transaction
from django.db.models import F, Func, TextField, Value
from django.utils import timezone

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from retrieval.chunking import ChunkDraft, chunk_blocks
from retrieval.embedders.base import Embedder, EmbedderUnavailable
from retrieval.embedding import current_tenant, embedding_space, get_embedder
from retrieval.models import Chunk, Document
from retrieval.parsing import SUPPORTED_MEDIA_TYPES, DocumentUnreadable, parse_document

logger = logging.getLogger(__name__)

DEFAULT_MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
DEFAULT_BATCH_SIZE = 32
DEFAULT_LEASE_SECONDS = 120
MAX_ATTEMPTS = 5
MAX_TITLE_CHARS = 300
MAX_TAGS = 50
FEATURE_TOP_K = 5
# Searched for a feature run, so chunks too large for the budget can give way to smaller ones.
FEATURE_CANDIDATES = 20


def _batched(items: list, size: int) -> list[tuple]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def max_document_bytes() -> int:
    return int(getattr(settings, "SWITCHBOARD_MAX_DOCUMENT_BYTES", DEFAULT_MAX_DOCUMENT_BYTES))


def _lease() -> timedelta:
    seconds = getattr(settings, "SWITCHBOARD_INGEST_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    return timedelta(seconds=seconds)


# --- adding, re-ingesting, deleting ------------------------------------------------------------


def check_size(size: int) -> None:
    """PayloadTooLarge (413) when a document of ``size`` bytes is over the limit."""
    limit = max_document_bytes()
    if size > limit:
        raise PayloadTooLarge(
            f"The document is {size} bytes; the limit is {limit} bytes.", param="file"
        )


def check_upload(*, size: int, media_type: str | None) -> str:
    """The media type to store, or PayloadTooLarge (413) / UnsupportedMediaType (415)."""
    check_size(size)
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported media type {media_type or 'unknown'!r}; send one of "
            f"{', '.join(SUPPORTED_MEDIA_TYPES)}.",
            param="media_type",
        )
    return media_type


def _clean_tags(access_tags: Sequence[str] | None) -> list[str]:
    tags = sorted({str(tag).strip() for tag in access_tags or [] if str(tag).strip()})
    if len(tags) > MAX_TAGS or any(len(tag) > 100 for tag in tags):
        raise InvalidRequest(
            f"At most {MAX_TAGS} access tags of up to 100 characters.", param="access_tags"
        )
    return tags


def create_document(
    *,
    title: str,
    content: bytes,
    media_type: str | None,
    source: str = "",
    metadata: dict[str, Any] | None = None,
    access_tags: Sequence[str] | None = None,
    created_by_key_id: int | None = None,
    created_by_name: str = "",
    enqueue: bool = True,
) -> tuple[Document, bool]:
    """Store a document and queue its ingestion. Returns ``(document, created)``: the same
    content uploaded again returns the existing document and changes nothing. ``enqueue=False``
    leaves the ingestion to the caller (benchmarks and tests run it in-process)."""
    media_type = check_upload(size=len(content), media_type=media_type)
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object.", param="metadata")
    tags = _clean_tags(access_tags)
    title = (title or source or "Untitled").strip()[:MAX_TITLE_CHARS]
    content_hash = hashlib.sha256(content).hexdigest()
    existing = Document.objects.defer("content").filter(content_hash=content_hash).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            document = Document.objects.create(
                title=title,
                source=source[:500],
                media_type=media_type,
                content=content,
                size_bytes=len(content),
                content_hash=content_hash,
                metadata=metadata or {},
                access_tags=tags,
                created_by_key_id=created_by_key_id,
                created_by_name=created_by_name[:150],
            )
            if enqueue:
                _enqueue_on_commit(document.id, document.ingesting_version)
    except IntegrityError:
        # The same content arrived concurrently; the other request's document stands.
        return Document.objects.defer("content").get(content_hash=content_hash), False
    return document, True


def reingest_document(*, document: Document) -> Document:
    """Queue a new version of ``document``; the current version stays searchable until the new
    one is complete."""
    with transaction.atomic():
        locked = Document.objects.select_for_update().defer("content").get(pk=document.pk)
        locked.ingesting_version = max(locked.ingesting_version, locked.current_version) + 1
        locked.status = Document.Status.QUEUED
        locked.failure_reason = ""
        locked.chunks_done = 0
        locked.chunks_total = 0
        locked.attempts = 0
        locked.lease_until = None
        locked.save(
            update_fields=[
                "ingesting_version",
                "status",
                "failure_reason",
                "chunks_done",
                "chunks_total",
                "attempts",
                "lease_until",
                "updated_at",
            ]
        )
        _enqueue_on_commit(locked.id, locked.ingesting_version)
    return locked


def delete_document(*, document: Document) -> None:
    """Delete a document and its chunks (an ingestion in flight stops at its next batch)."""
    with transaction.atomic():
        deleted, _ = Document.objects.filter(pk=document.pk).delete()
        if deleted:
            _emit_document_event("document.deleted", document, status="deleted")


def document_event_data(document: Document) -> dict[str, Any]:
    """The ``data`` of a ``document.*`` webhook event: enough to fetch or re-sync the
    document, never its content."""
    return {
        "document_id": document.pk,
        "title": document.title,
        "source": document.source,
        "status": document.status,
        "failure_reason": document.failure_reason,
        "version": document.current_version,
        "ingesting_version": document.ingesting_version,
        "chunks": document.chunks_total,
        "content_hash": document.content_hash,
        "url": f"/api/v1/documents/{document.pk}",
    }


def _emit_document_event(event: str, document: Document, **overrides: Any) -> None:
    from jobs.webhooks import emit

    emit(event, {**document_event_data(document), **overrides})


def _enqueue_on_commit(document_id: int, version: int) -> None:
    from django.db import connection

    from retrieval.tasks import ingest_document

    schema = connection.schema_name
    transaction.on_commit(lambda: ingest_document.apply_async(args=[schema, document_id, version]))


# --- ingestion (the Celery task's body) ------------------------------------------------------


@dataclass(frozen=True)
class IngestOutcome:
    status: str  # "ready", "failed", "superseded", "gone", "leased"
    retry_in: float | None = None  # "leased": another worker holds it for this long


def embedding_text(title: str, draft: ChunkDraft | Chunk) -> str:
    """What is embedded for a chunk: its text in the context of its title and headings."""
    context = " › ".join([title, *draft.heading_path])
    return f"{context}\n\n{draft.text}"


def _search_vector(title: str, config: str) -> SearchVector:
    headings = Func(
        F("heading_path"), Value(" "), function="array_to_string", output_field=TextField()
    )
    return (
        SearchVector(Value(title), config=config, weight="A")
        + SearchVector(headings, config=config, weight="B")
        + SearchVector("text", config=config, weight="D")
    )


def _claim(document_id: int, version: int, now: datetime) -> Document | IngestOutcome:
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return IngestOutcome("gone")
        if document.ingesting_version != version or document.current_version >= version:
            return IngestOutcome("superseded")
        if document.status == Document.Status.FAILED:
            return IngestOutcome("failed")
        if (
            document.status == Document.Status.PROCESSING
            and document.lease_until
            and document.lease_until > now
        ):
            return IngestOutcome("leased", (document.lease_until - now).total_seconds() + 1)
        if document.attempts >= MAX_ATTEMPTS:
            _fail(document_id, version, f"Gave up after {MAX_ATTEMPTS} attempts.")
            return IngestOutcome("failed")
        document.status = Document.Status.PROCESSING
        document.attempts += 1
        document.lease_until = now + _lease()
        document.save(update_fields=["status", "attempts", "lease_until", "updated_at"])
        return document


def _fail(document_id: int, version: int, reason: str) -> None:
    with transaction.atomic():
        failed = (
            Document.objects.filter(pk=document_id, ingesting_version=version)
            .exclude(status=Document.Status.FAILED)
            .update(
                status=Document.Status.FAILED,
                failure_reason=reason[:2000],
                lease_until=None,
                updated_at=timezone.now(),
            )
        )
        if failed:
            # In the same transaction as the status change: the event is sent if and only if
            # the document really became failed (a redelivered task sends nothing twice).
            _emit_document_event(
                "document.failed", Document.objects.defer("content").get(pk=document_id)
            )


def ingest_document(
    *,
    document_id: int,
    version: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    embedder: Embedder | None = None,
    now: datetime | None = None,
) -> IngestOutcome:
    """Parse, chunk, embed and store one version of a document, then make it current.

    Runs in the document's schema. Safe to run again after a crash: stored chunks of this
    version are kept and only the missing ordinals are embedded. An unreadable document is
    marked failed with its reason. When the embedder is unavailable the chunks are stored
    without vectors (full-text search finds them; ``reembed_documents`` fills them in later).
    """
    claimed = _claim(document_id, version, now or timezone.now())
    if isinstance(claimed, IngestOutcome):
        return claimed
    document = claimed
    tenant = current_tenant()
    try:
        drafts = chunk_blocks(parse_document(bytes(document.content), document.media_type))
    except DocumentUnreadable as exc:
        _fail(document_id, version, str(exc))
        return IngestOutcome("failed")
    Document.objects.filter(pk=document_id, ingesting_version=version).update(
        chunks_total=len(drafts)
    )
    stored = set(
        Chunk.objects.filter(document_id=document_id, version=version).values_list(
            "ordinal", flat=True
        )
    )
    missing = [(ordinal, d) for ordinal, d in enumerate(drafts) if ordinal not in stored]
    embedder = embedder or get_embedder(tenant=tenant, record_local=True)
    space: str | None = embedder.name
    for batch in _batched(missing, max(1, batch_size)):
        vectors: list[list[float]] | list[None] = [None] * len(batch)
        if space is not None:
            try:
                vectors = embedder.embed([embedding_text(document.title, d) for _, d in batch])
            except EmbedderUnavailable as exc:
                logger.warning("document %s stored without vectors: %s", document_id, exc)
                space = None
                vectors = [None] * len(batch)
        if not _store_batch(document, version, batch, vectors, space or "", tenant):
            return IngestOutcome("superseded")
    return _make_current(document_id, version, len(drafts))


def _store_batch(
    document: Document,
    version: int,
    batch: tuple[tuple[int, ChunkDraft], ...],
    vectors: Sequence[list[float] | None],
    space: str,
    tenant: Any,
) -> bool:
    with transaction.atomic():
        # The row lock orders this batch against a re-ingest or delete of the same document.
        alive = (
            Document.objects.select_for_update()
            .filter(pk=document.pk, ingesting_version=version)
            .exists()
        )
        if not alive:
            return False
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document.pk,
                    version=version,
                    ordinal=ordinal,
                    text=draft.text,
                    heading_path=list(draft.heading_path),
                    page=draft.page,
                    token_count=draft.token_count,
                    embedding=vector,
                    embedder=space if vector is not None else "",
                )
                for (ordinal, draft), vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
        Chunk.objects.filter(
            document_id=document.pk,
            version=version,
            ordinal__in=[ordinal for ordinal, _ in batch],
            search_vector__isnull=True,
        ).update(search_vector=_search_vector(document.title, tenant.text_search_config))
        done = Chunk.objects.filter(document_id=document.pk, version=version).count()
        Document.objects.filter(pk=document.pk).update(
            chunks_done=done, lease_until=timezone.now() + _lease(), updated_at=timezone.now()
        )
    return True


def _make_current(document_id: int, version: int, total: int) -> IngestOutcome:
    with transaction.atomic():
        document = (
            Document.objects.select_for_update()
            .defer("content")
            .filter(pk=document_id, ingesting_version=version)
            .first()
        )
        if document is None:
            return IngestOutcome("superseded")
        Chunk.objects.filter(document_id=document_id).exclude(version=version).delete()
        Chunk.objects.filter(document_id=document_id, version=version, ordinal__gte=total).delete()
        now = timezone.now()
        document.current_version = version
        document.status = Document.Status.READY
        document.failure_reason = ""
        document.chunks_done = document.chunks_total = total
        document.lease_until = None
        document.ingested_at = now
        document.save()
        _emit_document_event("document.ready", document)
    return IngestOutcome("ready")


def recover_stalled_ingestions(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """Documents whose worker died (lease expired) or whose queued message was lost, re-queued
    in this schema. Returns the (document id, version) pairs queued again."""
    now = now or timezone.now()
    stalled = Document.objects.filter(
        status=Document.Status.PROCESSING, lease_until__lt=now
    ) | Document.objects.filter(status=Document.Status.QUEUED, updated_at__lt=now - _lease())
    pairs = []
    with transaction.atomic():
        for document in stalled.select_for_update().defer("content"):
            # Queued again with a fresh timestamp, so the next sweep waits a full lease.
            Document.objects.filter(pk=document.pk).update(
                status=Document.Status.QUEUED, lease_until=None, updated_at=timezone.now()
            )
            _enqueue_on_commit(document.pk, document.ingesting_version)
            pairs.append((document.pk, document.ingesting_version))
    return pairs


# --- re-embedding --------------------------------------------------------------------------


def reembed_documents(*, embedder: Embedder | None = None, batch_size: int = 64) -> int:
    """Give every current chunk of this schema a vector in the installation's current space.

    Chunks are updated in place, batch by batch; search only compares vectors of the current
    space, so chunks not yet moved are simply absent from the vector retriever meanwhile.
    Returns the number of chunks re-embedded. Raises ``EmbedderUnavailable``.
    """
    from retrieval.selectors import chunks_outside_space

    embedder = embedder or get_embedder(tenant=current_tenant(), record_local=True)
    count = 0
    while True:
        batch = list(chunks_outside_space(embedder.name).select_related("document")[:batch_size])
        if not batch:
            return count
        vectors = embedder.embed([embedding_text(c.document.title, c) for c in batch])
        with transaction.atomic():
            for chunk, vector in zip(batch, vectors, strict=True):
                Chunk.objects.filter(pk=chunk.pk).update(embedding=vector, embedder=embedder.name)
        count += len(batch)


def stale_space_count() -> int:
    """Current chunks without a vector of the current space."""
    from retrieval.selectors import chunks_outside_space

    return chunks_outside_space(embedding_space()).count()


# --- feature runs -----------------------------------------------------------------------------


def search_for_feature(
    *,
    tenant: Any,
    feature: Any,
    data: dict,
    access_tags: list[str] | None,
    version: Any | None = None,
) -> tuple[list[Any], list[Any]]:
    """The retrieval step of a feature run: the run's question against the tenant's documents,
    as many of the best chunks (at most ``FEATURE_TOP_K``) as fit the run's context budget
    (``retrieval.grounding``: the smallest context window of the feature's deployments minus
    the prompt and the answer reserve). ``version`` is the version the run will be served by;
    without it the budget holds for every version serving the feature now.

    Returns ``(context chunks for the prompt, RetrievedChunk records for usage and audit)``,
    in rank order; a chunk too large for what is left is skipped for the next one.
    """
    from gateway.records import RetrievedChunk
    from prompts.rendering import ContextChunk
    from retrieval.grounding import chunk_tokens, context_budget, serving_versions
    from retrieval.selectors import search

    query = data.get("question") or data.get("query")
    if not isinstance(query, str) or not query.strip():
        query = " ".join(str(v) for v in data.values() if isinstance(v, str))
    if not query.strip():
        return [], []
    budget = None
    if feature is not None:
        versions = [version] if version is not None else serving_versions(feature)
        budget = context_budget(tenant=tenant, feature=feature, data=data, versions=versions)
    left = budget.tokens if budget is not None else None
    if left == 0:
        return [], []
    result = search(
        query=query[:2000], top_k=FEATURE_CANDIDATES, access_tags=access_tags, tenant=tenant
    )
    context, records = [], []
    for hit in result.hits:
        if len(context) == FEATURE_TOP_K:
            break
        chunk = ContextChunk(
            id=f"c{hit.chunk_id}",
            text=hit.text,
            title=" › ".join([hit.title, *hit.heading_path]),
        )
        if left is not None:
            cost = chunk_tokens(chunk.id, chunk.title, chunk.text)
            if cost > left:
                continue
            left -= cost
        context.append(chunk)
        records.append(
            RetrievedChunk(
                document_id=hit.document_id, chunk_id=hit.chunk_id, score=hit.score, title=hit.title
            )
        )
    return context, records
