"""The installation's embedder, chosen by the ``SWITCHBOARD_EMBEDDER`` setting.

- ``local`` (default): all-MiniLM-L6-v2 computed in-process, offline.
- ``provider:<alias>``: the gateway's embedding entry point for that model alias, so the calls
  are admitted, PII-guarded, and recorded in usage and audit like any other AI call.
- ``none``: no embedder; search answers from full text alone (flagged degraded).

One embedding space per installation: every chunk stores the name of the embedder that made its
vector, and search compares only vectors of the current space (``manage.py reembed_documents``
moves the stored vectors to a new space).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from retrieval.embedders.base import Embedder, EmbedderUnavailable
from retrieval.models import EMBEDDING_DIMENSIONS

__all__ = ["Embedder", "EmbedderUnavailable", "embedding_space", "get_embedder"]


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


def get_embedder(*, tenant: Any | None = None) -> Embedder:
    """The installation's embedder (``tenant`` is the caller for a provider embedder)."""
    choice = _choice()
    embedding_space()  # validates the setting
    if choice == "local":
        from retrieval.embedders.local import get_local_embedder

        return get_local_embedder()
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
