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
    """The in-process embedder, attributed and limited like a provider call: each batch is
    admitted against the tenant's limits (rate limits and token budgets; no cost), then
    recorded as a usage and audit record of the tenant's (feature ``retrieval``, endpoint
    ``embeddings``, provider ``local``, tokens counted with tiktoken), so it shows in the
    dashboards and counts against the budgets. A refused batch raises ``EmbedderUnavailable``:
    the chunks are stored for full-text search and ``reembed_documents`` fills their vectors in
    later. The texts never leave the process, so they are not copied into the audit record (the
    document they came from is the tenant's)."""

    def __init__(self, inner: Embedder, tenant: Any | None = None) -> None:
        self._inner = inner
        self._tenant = tenant
        self.name = inner.name
        self.dimensions = inner.dimensions

    def embed(self, texts: list[str]) -> list[list[float]]:
        from decimal import Decimal

        from gateway.errors import SwitchboardError
        from gateway.records import CallContext, CallRecord
        from retrieval.tokens import count_tokens
        from usage.services import admit

        if not texts:
            return []
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
        started = time.perf_counter()
        try:
            admission = admit(
                tenant=tenant,
                api_key_id=None,
                end_user="",
                feature=ctx.feature,
                call_id=ctx.call_id,
                request_id=ctx.request_id,
                estimated_tokens=record.input_tokens,
                max_cost=Decimal(0),
            )
            record.reservation_id = admission.reservation_id
            vectors = self._inner.embed(texts)
        except SwitchboardError as exc:
            self._failed(record, started, tenant, exc)
            raise EmbedderUnavailable(
                f"the tenant's limits refuse embedding: {exc.message}"
            ) from exc
        except Exception as exc:
            self._failed(record, started, tenant, exc)
            raise
        record.latency_ms = {"provider": _elapsed(started), "total": _elapsed(started)}
        self._write(record, tenant)
        return vectors

    def _failed(self, record, started: float, tenant, exc: Exception) -> None:
        from gateway.errors import SwitchboardError
        from gateway.service import _fail

        record.input_tokens = 0  # nothing was embedded
        if isinstance(exc, SwitchboardError):
            _fail(record, exc)  # as for provider calls: refused for 4xx, failed otherwise
        else:
            record.status, record.error_type, record.http_status = "failed", "embedder_error", 503
            record.error_message = type(exc).__name__
        record.latency_ms = {"total": _elapsed(started)}
        self._write(record, tenant)

    @staticmethod
    def _write(record, tenant) -> None:
        """Written inline, on this connection: document work runs in workers (no caller
        waits), and a record inside the ingestion's transaction shares its fate. A failure to
        write never breaks the ingestion (an unsettled reservation is swept as ``lost``)."""
        from django_tenants.utils import schema_context

        from gateway.metrics import observe_call
        from gateway.recorder import persist

        try:
            observe_call(record, tenant.slug)
            if connection.schema_name == tenant.schema_name:
                persist(record)
            else:
                with schema_context(tenant.schema_name):
                    persist(record)
        except Exception:
            logger.exception("recording a local embedding call failed")


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


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
