"""The installation's embedder, chosen by the ``SWITCHBOARD_EMBEDDER`` setting.

- ``local`` (default): all-MiniLM-L6-v2 computed in-process, offline. Each call is recorded
  in the tenant's usage and audit like a provider embedding call (endpoint ``embeddings``,
  provider ``local``, tokens counted, no cost) when it embeds documents (ingestion,
  re-embedding), so dashboards and token budgets see that work. A query embedding (search, the
  semantic cache) is part of the request it serves and costs nothing, so it is not recorded on
  its own: that would double the records of every cached run and, measured, add 10 ms to a
  semantic cache hit (see BENCHMARKS.md).
- ``provider:<alias>``: the gateway's embedding entry point for that model alias, so the calls
  are admitted, PII-guarded, and recorded in usage and audit like any other AI call.
- ``none``: no embedder; search answers from full text alone (flagged degraded).

One embedding space per installation: every chunk stores the name of the embedder that made its
vector, and search compares only vectors of the current space (``manage.py reembed_documents``
moves the stored vectors to a new space).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from retrieval.embedders.base import Embedder, EmbedderUnavailable
from retrieval.models import EMBEDDING_DIMENSIONS

__all__ = ["Embedder", "EmbedderUnavailable", "embedding_space", "get_embedder"]

logger = logging.getLogger(__name__)


class DisabledEmbedder:
    """The ``none`` choice: every call fails, so search falls back to full text."""

    name = "none"
    dimensions = EMBEDDING_DIMENSIONS

    def embed(self, texts: list[str]) -> list[list[float]]:
        raise EmbedderUnavailable("no embedder is configured (SWITCHBOARD_EMBEDDER=none)")


class ProviderEmbedder:
    """Embeddings from a model alias through ``gateway.service.execute_embeddings``."""

    dimensions = EMBEDDING_DIMENSIONS

    def __init__(self, alias: str, tenant: Any | None = None) -> None:
        self.alias = alias
        self.name = provider_space_name(alias)
        self._tenant = tenant

    def embed(self, texts: list[str]) -> list[list[float]]:
        from asgiref.sync import async_to_sync

        from gateway.errors import SwitchboardError
        from gateway.records import CallContext
        from gateway.service import execute_embeddings

        if not texts:
            return []
        ctx = CallContext(
            tenant=self._tenant or current_tenant(),
            request_id=f"retrieval-{uuid.uuid4().hex}",
            feature="retrieval",
            endpoint="embeddings",
            alias=self.alias,
            record_inline=True,
        )
        try:
            outcome = async_to_sync(execute_embeddings)(ctx, texts, dimensions=self.dimensions)
        except SwitchboardError as exc:
            raise EmbedderUnavailable(f"embedding alias {self.alias!r}: {exc.message}") from exc
        vectors = outcome.vectors
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise EmbedderUnavailable(
                f"embedding alias {self.alias!r} did not return {self.dimensions}-dimension "
                "vectors; choose a model that supports that size"
            )
        return [_unit(v) for v in vectors]


class RecordedLocalEmbedder:
    """The in-process embedder, attributed: every call becomes a usage and audit record of the
    tenant's (feature ``retrieval``, endpoint ``embeddings``, provider ``local``, tokens
    counted with tiktoken, cost 0), written with the gateway's recorder, so it shows in the
    dashboards and counts against token budgets. The texts never leave the process, so they
    are not copied into the audit record (the run or document they came from is recorded)."""

    def __init__(self, inner: Embedder, tenant: Any | None = None) -> None:
        self._inner = inner
        self._tenant = tenant
        self.name = inner.name
        self.dimensions = inner.dimensions

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        started = time.perf_counter()
        vectors = self._inner.embed(texts)
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        try:
            self._record(texts, elapsed)
        except Exception:
            # Attribution must never break a search or an ingestion.
            logger.exception("recording a local embedding call failed")
        return vectors

    def _record(self, texts: list[str], elapsed_ms: float) -> None:
        from django.db import connection

        from gateway.metrics import observe_call
        from gateway.recorder import persist
        from gateway.records import CallContext, CallRecord
        from retrieval.tokens import count_tokens

        tenant = self._tenant or current_tenant()
        ctx = CallContext(
            tenant=tenant,
            request_id=f"retrieval-{uuid.uuid4().hex}",
            feature="retrieval",
            endpoint="embeddings",
            alias="local",
        )
        record = CallRecord.start(ctx)
        record.deployment = self.name
        record.provider = "local"
        record.provider_model = self.name.removeprefix("local:")
        record.input_tokens = sum(count_tokens(t) for t in texts)
        record.latency_ms = {"provider": elapsed_ms, "total": elapsed_ms}
        observe_call(record, tenant.slug)
        # Written inline, on this connection: document work runs in workers (no caller waits),
        # and a record inside the ingestion's transaction shares its fate.
        schema = tenant.schema_name
        if connection.schema_name == schema:
            persist(record)
        else:
            from django_tenants.utils import schema_context

            with schema_context(schema):
                persist(record)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def provider_space_name(alias: str) -> str:
    return f"provider:{alias}@{EMBEDDING_DIMENSIONS}"


def _choice() -> str:
    return (getattr(settings, "SWITCHBOARD_EMBEDDER", "local") or "local").strip()


def embedding_space() -> str:
    """Name of the installation's current embedding space (without loading any model)."""
    choice = _choice()
    if choice == "local":
        from retrieval.embedders.local import LocalMiniLMEmbedder

        return LocalMiniLMEmbedder.name
    if choice == "none":
        return DisabledEmbedder.name
    if choice.startswith("provider:") and choice.removeprefix("provider:"):
        return provider_space_name(choice.removeprefix("provider:"))
    raise ImproperlyConfigured(
        f"SWITCHBOARD_EMBEDDER={choice!r}: use 'local', 'provider:<alias>' or 'none'"
    )


def get_embedder(*, tenant: Any | None = None, record_local: bool = False) -> Embedder:
    """The installation's embedder (``tenant`` is the caller for a provider embedder).
    ``record_local`` attributes the local embedder's calls to the tenant (document work)."""
    choice = _choice()
    embedding_space()  # validates the setting
    if choice == "local":
        from retrieval.embedders.local import get_local_embedder

        local = get_local_embedder()
        return RecordedLocalEmbedder(local, tenant) if record_local else local
    if choice == "none":
        return DisabledEmbedder()
    return ProviderEmbedder(choice.removeprefix("provider:"), tenant)


def current_tenant() -> Any:
    """The Tenant whose schema the connection is on (a real row, not django-tenants' stand-in)."""
    from tenants.models import Tenant

    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=connection.schema_name)
