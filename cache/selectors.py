"""Reads of the answer cache: entries by key, the nearest entry of a scope, and the console's
figures (computed from usage records, so they survive a purge)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from pgvector.django import CosineDistance

from cache.models import CacheEntry

_MILLION = Decimal(1_000_000)


def exact_entry(*, exact_key: str, now: datetime) -> CacheEntry | None:
    return CacheEntry.objects.filter(exact_key=exact_key, expires_at__gt=now).first()


def nearest_entry(
    *, semantic_key: str, embedding: list[float], embedder: str, max_distance: float, now: datetime
) -> tuple[CacheEntry, float] | None:
    """The closest live entry of the same scope within ``max_distance`` (cosine distance).

    The distance is checked here rather than in SQL: a WHERE on the distance keeps PostgreSQL
    from walking the HNSW index in distance order (it scans and ranks the whole scope).
    """
    entry = (
        CacheEntry.objects.filter(semantic_key=semantic_key, embedder=embedder, expires_at__gt=now)
        .annotate(distance=CosineDistance("embedding", embedding))
        .order_by("distance")
        .first()
    )
    if entry is None or entry.distance > max_distance:
        return None
    return entry, float(entry.distance)


def sources_current(sources: dict[str, int]) -> bool:
    """Whether every document an entry was built from still serves the same version."""
    if not sources:
        return True
    from retrieval.models import Document

    current = dict(
        Document.objects.filter(id__in=[int(d) for d in sources]).values_list(
            "id", "current_version"
        )
    )
    return all(current.get(int(d)) == version for d, version in sources.items())


def chunk_sources(chunk_ids: Iterable[int]) -> dict[str, int] | None:
    """{document id: version} of the chunks, or None when one of them is no longer current
    (its document was re-ingested or deleted since the search)."""
    ids = set(chunk_ids)
    if not ids:
        return {}
    from retrieval.models import Chunk, Document

    rows = list(Chunk.objects.filter(id__in=ids).values_list("document_id", "version"))
    if len(rows) != len(ids):
        return None
    versions = dict(rows)
    if len(versions) != len(set(rows)):  # two versions of one document: mid re-ingest
        return None
    sources = {str(doc): version for doc, version in versions.items()}
    current = dict(Document.objects.filter(id__in=versions).values_list("id", "current_version"))
    if any(current.get(doc) != version for doc, version in versions.items()):
        return None
    return sources


def feature_figures(*, since: datetime) -> list[dict]:
    """Per feature since ``since``: runs, hits, hit rate, tokens and money saved, live entries.

    Money saved is an estimate: the tokens a hit saved at the price of the alias's first
    deployment, split between input and output as the feature's provider-served runs were.
    """
    from gateway.routing import get_routing_table
    from prompts.models import Feature
    from usage.models import UsageRecord

    table = get_routing_table()
    rows = (
        UsageRecord.objects.filter(endpoint="feature_run", created_at__gte=since)
        .values("feature", "alias")
        .annotate(
            runs=Count("id"),
            hits=Count("id", filter=Q(cache_hit=True)),
            saved=Sum("tokens_saved", default=0),
            served_in=Sum("input_tokens", filter=Q(cache_hit=False), default=0),
            served_out=Sum("output_tokens", filter=Q(cache_hit=False), default=0),
        )
    )
    figures: dict[str, dict] = {}
    for row in rows:
        figure = figures.setdefault(
            row["feature"],
            {"runs": 0, "hits": 0, "tokens_saved": 0, "money_saved": Decimal(0)},
        )
        figure["runs"] += row["runs"]
        figure["hits"] += row["hits"]
        figure["tokens_saved"] += row["saved"]
        figure["money_saved"] += _money(table, row)
    live = dict(
        CacheEntry.objects.values("feature").annotate(n=Count("id")).values_list("feature", "n")
    )
    result = []
    for feature in Feature.objects.order_by("slug"):
        figure = figures.get(feature.slug, {"runs": 0, "hits": 0, "tokens_saved": 0})
        runs, hits = figure["runs"], figure["hits"]
        result.append(
            {
                "feature": feature,
                "runs": runs,
                "hits": hits,
                "hit_rate": round(100 * hits / runs, 1) if runs else None,
                "tokens_saved": figure["tokens_saved"],
                "money_saved": figure.get("money_saved", Decimal(0)).quantize(Decimal("0.000001")),
                "entries": live.get(feature.slug, 0),
            }
        )
    return result


def _money(table, row: dict) -> Decimal:
    if not row["saved"]:
        return Decimal(0)
    try:
        deployment = table.resolve(row["alias"])[0]
    except (KeyError, IndexError):
        return Decimal(0)  # an alias no longer configured: no price to apply
    served = row["served_in"] + row["served_out"]
    # With no provider-served run to learn the split from, count it all as input: the
    # cheaper side, so the estimate errs low.
    share_in = Decimal(row["served_in"]) / served if served else Decimal(1)
    saved = Decimal(row["saved"])
    return (
        saved * share_in * deployment.price_input_per_mtok
        + saved * (1 - share_in) * deployment.price_output_per_mtok
    ) / _MILLION
