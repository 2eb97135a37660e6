"""Reads: documents, their current chunks, and ``search`` (the public hybrid search)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import F, QuerySet

from retrieval.embedders.base import Embedder
from retrieval.embedding import current_tenant, embedding_space, get_embedder
from retrieval.models import Chunk, Document
from retrieval.search import RETRIEVERS, SearchResult, hybrid_search


def search(
    *,
    query: str,
    top_k: int = 8,
    filters: dict[str, Any] | None = None,
    access_tags: Sequence[str] | None = None,
    retrievers: Sequence[str] = RETRIEVERS,
    embedder: Embedder | None = None,
    tenant: Any | None = None,
    ef_search: int | None = None,
) -> SearchResult:
    """Hybrid search in the current tenant schema's documents.

    ``filters`` match document metadata (``{"key": value}`` or ``{"key": [any, of]}``);
    ``access_tags`` are the caller's tags (a tagged document needs one of them; untagged ones
    are public to the tenant). ``embedder`` defaults to the installation's; when it is
    unavailable the result comes from full text alone with ``degraded`` set. Raises
    ``InvalidRequest`` for a bad query, ``top_k`` or filter.
    """
    tenant = tenant or current_tenant()
    if embedder is None and "vector" in retrievers:
        embedder = get_embedder(tenant=tenant)
    return hybrid_search(
        query=query,
        top_k=top_k,
        filters=filters,
        access_tags=access_tags,
        text_search_config=tenant.text_search_config,
        embedder=embedder,
        retrievers=retrievers,
        ef_search=ef_search,
    )


def documents(
    *, status: str | None = None, title: str | None = None, media_type: str | None = None
) -> QuerySet[Document]:
    """The schema's documents, newest first, without their stored bytes."""
    queryset = Document.objects.defer("content")
    if status:
        queryset = queryset.filter(status=status)
    if title:
        queryset = queryset.filter(title__icontains=title)
    if media_type:
        queryset = queryset.filter(media_type=media_type)
    return queryset


def current_chunks(document: Document) -> QuerySet[Chunk]:
    """The chunks a search sees for ``document`` (its current version), in order."""
    return Chunk.objects.filter(document=document, version=document.current_version).order_by(
        "ordinal"
    )


def chunks_outside_space(space: str | None = None) -> QuerySet[Chunk]:
    """Current-version chunks whose vector is missing or from another embedding space."""
    space = space or embedding_space()
    return (
        Chunk.objects.filter(version=F("document__current_version"))
        .exclude(embedder=space, embedding__isnull=False)
        .order_by("id")
    )
