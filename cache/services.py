"""Writes (and the lookup) of the answer cache, run by the gateway in the call's tenant schema.

``lookup_answer`` tries the exact layer, then the semantic layer; ``similar_answer`` is the
fallback ladder's "similar recent answer" rung over the same store and keys; ``store_answer``
writes what a provider answered. Purges remove entries by feature, conversation or expiry.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from cache import selectors
from cache.keys import CacheKeys, CacheScope
from cache.models import CacheEntry

logger = logging.getLogger(__name__)

_INPUT_TEXT_CHARS = 2000


@dataclass
class Lookup:
    """A lookup's outcome; ``embedding`` is kept for the write after a miss."""

    entry: CacheEntry | None = None
    layer: str = ""  # "exact" | "semantic" | "similar"
    distance: float | None = None
    embedding: list[float] | None = None
    embedder: str = ""


def _embed(text: str, tenant: Any) -> tuple[list[float] | None, str]:
    """The user's input embedded, or (None, "") when the embedder is unavailable: then only the
    exact layer works, which is a slower cache, never an error."""
    from retrieval.embedding import EmbedderUnavailable, embedding_space, get_embedder

    if not text.strip():
        return None, ""
    try:
        embedder = get_embedder(tenant=tenant)
        vector = embedder.embed([text])[0]
    except EmbedderUnavailable as exc:
        logger.info("semantic cache skipped: %s", exc)
        return None, ""
    return [float(x) for x in vector], embedding_space()


def _usable(entry: CacheEntry) -> bool:
    """An entry built from documents that changed since is never served (and is dropped)."""
    if selectors.sources_current(entry.sources):
        return True
    CacheEntry.objects.filter(pk=entry.pk).delete()
    return False


def lookup_answer(
    *, scope: CacheScope, keys: CacheKeys, for_tenant: Any = None, now: datetime | None = None
) -> Lookup:
    """The exact entry of the request, else the nearest entry of its scope within the scope's
    distance; a miss still carries the input's embedding for ``store_answer``."""
    now = now or timezone.now()
    if scope.read:
        entry = selectors.exact_entry(exact_key=keys.exact, now=now)
        if entry is not None and _usable(entry):
            return Lookup(entry=entry, layer="exact", distance=0.0)
    embedding, embedder = _embed(scope.query_text, for_tenant)
    lookup = Lookup(embedding=embedding, embedder=embedder)
    if scope.read and embedding is not None:
        found = selectors.nearest_entry(
            semantic_key=keys.semantic,
            embedding=embedding,
            embedder=embedder,
            max_distance=scope.max_distance,
            now=now,
        )
        if found is not None and _usable(found[0]):
            lookup.entry, lookup.distance = found
            lookup.layer = "semantic"
    return lookup


def similar_answer(
    *, scope: CacheScope, keys: CacheKeys, lookup: Lookup, now: datetime | None = None
) -> Lookup | None:
    """The ladder's rung when every deployment failed: the nearest live entry of the same
    scope within the feature's (looser) fallback distance."""
    if not scope.read or scope.fallback_max_distance is None or lookup.embedding is None:
        return None
    found = selectors.nearest_entry(
        semantic_key=keys.semantic,
        embedding=lookup.embedding,
        embedder=lookup.embedder,
        max_distance=scope.fallback_max_distance,
        now=now or timezone.now(),
    )
    if found is None or not _usable(found[0]):
        return None
    return Lookup(entry=found[0], layer="similar", distance=found[1])


def store_answer(
    *,
    scope: CacheScope,
    keys: CacheKeys,
    lookup: Lookup,
    model: str,
    content: str,
    parsed: Any,
    deployment: str,
    provider_model: str,
    input_tokens: int,
    output_tokens: int,
    call_id: str,
    now: datetime | None = None,
) -> CacheEntry | None:
    """Write (or refresh) the entry for this request; None when a source document changed
    while the call ran, so the answer may already be out of date."""
    sources = selectors.chunk_sources(scope.chunk_ids)
    if sources is None:
        return None
    now = now or timezone.now()
    entry = CacheEntry(
        exact_key=keys.exact,
        semantic_key=keys.semantic,
        feature=scope.feature,
        prompt_version_id=scope.prompt_version_id,
        generation=scope.generation,
        model=model,
        context_fingerprint=keys.context_fingerprint,
        end_user=scope.end_user,
        conversation_id=scope.conversation_id,
        embedding=lookup.embedding,
        embedder=lookup.embedder,
        input_text=scope.query_text[:_INPUT_TEXT_CHARS],
        content=content,
        parsed=parsed,
        deployment=deployment,
        provider_model=provider_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        sources=sources,
        source_call_id=call_id,
        created_at=now,
        expires_at=now + timedelta(seconds=scope.ttl_seconds),
        hit_count=0,
    )
    refreshed = [
        f.name for f in CacheEntry._meta.concrete_fields if f.name not in ("id", "exact_key")
    ]
    # Two concurrent misses of one request both write: the later answer wins, no error.
    CacheEntry.objects.bulk_create(
        [entry], update_conflicts=True, unique_fields=["exact_key"], update_fields=refreshed
    )
    return entry


def count_hits(records: list) -> None:
    """Add the served entries' hits (called with the calls' usage and audit records, in their
    transaction, so the request path does not wait for it)."""
    served = Counter(r.cache_entry_id for r in records if r.cache_hit and r.cache_entry_id)
    latest = {r.cache_entry_id: r.created_at for r in records if r.cache_entry_id}
    for entry_id, hits in served.items():
        CacheEntry.objects.filter(pk=entry_id).update(
            hit_count=F("hit_count") + hits, last_hit_at=latest[entry_id]
        )


def purge_feature(*, feature_slug: str) -> int:
    """Remove every entry of a feature (publish, rollback, policy change, the console)."""
    deleted, _ = CacheEntry.objects.filter(feature=feature_slug).delete()
    return deleted


def purge_conversation(*, conversation_id: str) -> int:
    """Remove the entries made inside a conversation (it is being deleted)."""
    deleted, _ = CacheEntry.objects.filter(conversation_id=conversation_id).delete()
    return deleted


def purge_expired(*, now: datetime | None = None) -> int:
    """Remove expired entries (they are never served; this only reclaims the space)."""
    deleted, _ = CacheEntry.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
