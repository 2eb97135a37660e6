"""Hybrid search over the current schema's chunks: vector (cosine over HNSW) and full text
(``websearch_to_tsquery`` ranked by ``ts_rank_cd``) fused by reciprocal rank fusion.

Both retrievers and the fusion run in ONE SQL statement, so a search reads one snapshot: while a
re-ingest flips a document's ``current_version`` it sees the old chunks or the new ones, never
some of each. Each retriever scans its own index (GIN, HNSW) and then applies the access-tag and
metadata filters before taking its candidates, so filtered-out chunks never use up a place.
pgvector's HNSW scan returns at most ``hnsw.ef_search`` nearest chunks (pgvector 0.6 has no
iterative scan): when the filters leave fewer than ``top_k`` of them, the same statement falls
back to an exact scan of the filtered chunks, which is small precisely when the filters are
selective.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from psycopg import sql

from gateway.errors import InvalidRequest
from retrieval.embedders.base import Embedder, EmbedderUnavailable

logger = logging.getLogger(__name__)

RETRIEVERS = ("lexical", "vector")
RRF_K = 60
DEFAULT_EF_SEARCH = 100
MAX_TOP_K = 50
MAX_QUERY_CHARS = 2000
MAX_FILTER_KEYS = 20
MAX_FILTER_VALUES = 100


@dataclass(frozen=True)
class RetrieverHit:
    rank: int
    score: float  # ts_rank_cd for lexical, cosine similarity for vector


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    text: str
    heading_path: list[str]
    page: int | None
    score: float  # the fused (RRF) score
    retrievers: dict[str, RetrieverHit]


@dataclass
class SearchResult:
    hits: list[SearchHit]
    degraded: bool = False
    degraded_reason: str = ""
    retrievers: tuple[str, ...] = RETRIEVERS
    embedding_space: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


# Chunks a search may see: its document's current version, public or sharing a caller's tag,
# and matching every metadata filter. Shared by both retrievers.
_VISIBLE = """
    c.version = d.current_version
    AND (cardinality(d.access_tags) = 0 OR d.access_tags && %(access_tags)s::varchar[])
"""

# Every word of the query must match (websearch syntax: "quoted phrase", or, -not). A strict
# lexical leg is the precise complement of the vector leg: OR-ing the words made it find weak
# single-word matches whose ranks diluted the fusion (on the labelled set, hybrid then fell
# below vector alone: recall@5 0.94 against 0.97).
_TSQUERY = "websearch_to_tsquery(%(config)s::regconfig, %(query)s)"

# Each retriever first scans its own index over the chunks alone (GIN for full text, HNSW for
# vectors), materialised so the planner cannot trade the index for a nested loop driven by a
# misestimated document filter, then applies visibility and metadata filters before its LIMIT.
_LEXICAL = """
lexical_matches AS MATERIALIZED (
    SELECT c.id, c.document_id, c.version, ts_rank_cd(c.search_vector, q.tsq, 1) AS score
    FROM retrieval_chunk c
    CROSS JOIN (SELECT {tsquery} AS tsq) q
    WHERE c.search_vector @@ q.tsq
),
lexical AS (
    SELECT c.id, c.score
    FROM lexical_matches c
    JOIN retrieval_document d ON d.id = c.document_id
    WHERE {visible} {filters}
    ORDER BY c.score DESC, c.id
    LIMIT %(candidates)s
),
lexical_ranked AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM lexical
)"""

_VECTOR = """
vector_nearest AS MATERIALIZED (
    SELECT c.id, c.document_id, c.version, c.embedding <=> %(vector)s::vector AS distance
    FROM retrieval_chunk c
    WHERE c.embedder = %(space)s AND c.embedding IS NOT NULL
    ORDER BY c.embedding <=> %(vector)s::vector
    LIMIT %(index_limit)s
),
vector_index AS (
    SELECT c.id, c.distance
    FROM vector_nearest c
    JOIN retrieval_document d ON d.id = c.document_id
    WHERE {visible} {filters}
    ORDER BY c.distance, c.id
    LIMIT %(candidates)s
),
vector_exact AS (
    -- Run only when the filters left fewer than top_k of the index's nearest chunks: an exact
    -- scan of the filtered chunks ("+ 0" keeps the planner off the index).
    SELECT c.id, c.embedding <=> %(vector)s::vector AS distance
    FROM retrieval_chunk c
    JOIN retrieval_document d ON d.id = c.document_id
    WHERE (SELECT count(*) FROM vector_index) < %(top_k)s
      AND c.embedder = %(space)s AND c.embedding IS NOT NULL AND {visible} {filters}
    ORDER BY (c.embedding <=> %(vector)s::vector) + 0
    LIMIT %(candidates)s
),
vector_ranked AS (
    SELECT id, 1 - distance AS score, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, distance FROM vector_index
        WHERE (SELECT count(*) FROM vector_index) >= %(top_k)s
        UNION ALL
        SELECT id, distance FROM vector_exact
    ) AS found
)"""

_NO_RANKS = "SELECT NULL::bigint AS id, NULL::float8 AS score, NULL::bigint AS rank WHERE false"

_FUSED = """
fused AS (
    SELECT coalesce(l.id, v.id) AS id,
           l.rank AS lexical_rank, l.score AS lexical_score,
           v.rank AS vector_rank, v.score AS vector_score,
           coalesce(1.0 / (%(rrf_k)s + l.rank), 0) + coalesce(1.0 / (%(rrf_k)s + v.rank), 0)
               AS fused_score
    FROM lexical_ranked l FULL OUTER JOIN vector_ranked v ON v.id = l.id
    ORDER BY fused_score DESC, least(l.rank, v.rank), coalesce(l.id, v.id)
    LIMIT %(top_k)s
)
SELECT f.id, c.document_id, d.title, c.text, c.heading_path, c.page, f.fused_score,
       f.lexical_rank, f.lexical_score, f.vector_rank, f.vector_score
FROM fused f
JOIN retrieval_chunk c ON c.id = f.id
JOIN retrieval_document d ON d.id = c.document_id
ORDER BY f.fused_score DESC, least(f.lexical_rank, f.vector_rank), f.id
"""


def _filter_sql(filters: dict[str, Any] | None, params: dict[str, Any]) -> str:
    """SQL conditions (with their parameters added to ``params``) for metadata filters:
    ``{"key": value}`` matches equal values, ``{"key": [v1, v2]}`` any of them."""
    if filters is None:
        return ""
    if not isinstance(filters, dict):
        raise InvalidRequest("filters must be an object of metadata keys.", param="filters")
    if len(filters) > MAX_FILTER_KEYS:
        raise InvalidRequest(f"At most {MAX_FILTER_KEYS} filter keys.", param="filters")
    clauses = []
    for index, (key, wanted) in enumerate(sorted(filters.items())):
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or len(values) > MAX_FILTER_VALUES:
            raise InvalidRequest(
                f"Filter {key!r} needs 1 to {MAX_FILTER_VALUES} values.", param=f"filters.{key}"
            )
        alternatives = []
        for position, value in enumerate(values):
            if not isinstance(value, str | int | float | bool) or value is None:
                raise InvalidRequest(
                    f"Filter {key!r}: values must be strings, numbers or booleans.",
                    param=f"filters.{key}",
                )
            name = f"filter_{index}_{position}"
            params[name] = json.dumps({key: value})
            alternatives.append(f"d.metadata @> %({name})s::jsonb")
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return "".join(f" AND {clause}" for clause in clauses)


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def hybrid_search(
    *,
    query: str,
    top_k: int,
    filters: dict[str, Any] | None,
    access_tags: Sequence[str] | None,
    text_search_config: str,
    embedder: Embedder | None,
    retrievers: Sequence[str] = RETRIEVERS,
    ef_search: int | None = None,
) -> SearchResult:
    """Search the current schema's chunks (see the module docstring)."""
    query = (query or "").strip()
    if not query:
        raise InvalidRequest("query must not be empty.", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"query is longer than {MAX_QUERY_CHARS} characters.", param="query")
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}.", param="top_k")
    unknown = set(retrievers) - set(RETRIEVERS)
    if unknown or not retrievers:
        raise InvalidRequest(f"retrievers must be among {RETRIEVERS}.", param="retrievers")
    tags = [str(t) for t in (access_tags or [])]
    candidates = max(4 * top_k, 40)
    ef = ef_search or getattr(settings, "SWITCHBOARD_SEARCH_EF_SEARCH", DEFAULT_EF_SEARCH)
    params: dict[str, Any] = {
        "access_tags": tags,
        "candidates": candidates,
        "top_k": top_k,
        "rrf_k": RRF_K,
        # HNSW returns at most ef_search rows: the index's nearest chunks before filtering.
        "index_limit": max(int(ef), 2 * candidates),
        "config": text_search_config,
        "query": query,
    }
    filter_sql = _filter_sql(filters, params)
    result = SearchResult(hits=[], retrievers=tuple(r for r in RETRIEVERS if r in retrievers))
    timings = result.timings_ms

    use_vector = "vector" in retrievers
    if use_vector:
        started = time.perf_counter()
        try:
            if embedder is None:
                raise EmbedderUnavailable("no embedder was given")
            params["vector"] = _vector_literal(embedder.embed([query])[0])
            params["space"] = embedder.name
            result.embedding_space = embedder.name
        except EmbedderUnavailable as exc:
            logger.warning("search falls back to full text: %s", exc)
            if "lexical" not in retrievers:
                raise
            use_vector = False
            result.degraded = True
            result.degraded_reason = f"embedder unavailable: {exc}"
            result.retrievers = ("lexical",)
        timings["embed"] = round((time.perf_counter() - started) * 1000, 2)

    fragments = {
        "tsquery": sql.SQL(_TSQUERY),
        "visible": sql.SQL(_VISIBLE),
        "filters": sql.SQL(filter_sql),  # fixed text naming parameters, never values
        "no_ranks": sql.SQL(_NO_RANKS),
    }
    lexical = _LEXICAL if "lexical" in retrievers else "lexical_ranked AS ({no_ranks})"
    vector = _VECTOR if use_vector else "vector_ranked AS ({no_ranks})"
    statement = (
        sql.SQL("WITH " + lexical + ",\n" + vector + ",\n" + _FUSED).format(**fragments).as_string()
    )

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if use_vector:
            # SET does not take bind parameters; the value is an int we computed.
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(params['index_limit'])}")
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    timings["query"] = round((time.perf_counter() - started) * 1000, 2)

    for row in rows:
        (chunk_id, document_id, title, text, heading_path, page, fused, lr, ls, vr, vs) = row
        found: dict[str, RetrieverHit] = {}
        if lr is not None:
            found["lexical"] = RetrieverHit(rank=int(lr), score=float(ls))
        if vr is not None:
            found["vector"] = RetrieverHit(rank=int(vr), score=float(vs))
        result.hits.append(
            SearchHit(
                chunk_id=chunk_id,
                document_id=document_id,
                title=title,
                text=text,
                heading_path=list(heading_path or []),
                page=page,
                score=float(fused),
                retrievers=found,
            )
        )
    return result
