"""Retrieval fixtures: documents added and ingested in a tenant's schema by running the
ingestion function directly (no eager Celery), and embedders with known behaviour."""

from __future__ import annotations

import pytest

from retrieval import services
from retrieval.embedders.base import EmbedderUnavailable


class DownEmbedder:
    """An embedder whose provider is down: every call raises EmbedderUnavailable."""

    name = "down"
    dimensions = 384

    def embed(self, texts: list[str]) -> list[list[float]]:
        raise EmbedderUnavailable("the embedding provider is down")


@pytest.fixture
def add_document():
    """Factory: store a document in the current schema and ingest it now; returns it fresh."""

    def add(
        text: str | bytes,
        *,
        title: str = "Doc",
        media_type: str = "text/markdown",
        metadata: dict | None = None,
        access_tags: list[str] | None = None,
        embedder=None,
        batch_size: int = services.DEFAULT_BATCH_SIZE,
    ):
        content = text.encode() if isinstance(text, str) else text
        document, _ = services.create_document(
            title=title,
            content=content,
            media_type=media_type,
            metadata=metadata,
            access_tags=access_tags,
            enqueue=False,
        )
        services.ingest_document(
            document_id=document.id,
            version=document.ingesting_version,
            embedder=embedder,
            batch_size=batch_size,
        )
        document.refresh_from_db()
        return document

    return add


@pytest.fixture
def celery_worker(worker_process):
    """Factory for real Celery worker processes on the test database (see ``worker_process``)."""
    return worker_process


@pytest.fixture
def own_tenants(transactional_db):
    """Factory: tenants of this test's own (committed, so a served request sees their
    documents; dropped afterwards, so nothing leaks into the session tenants' schemas)."""
    import itertools

    from tenants import services as tenant_services
    from tests.conftest import TenantFixture

    made = []
    numbers = itertools.count()

    def make() -> TenantFixture:
        suffix = f"{next(numbers)}-{id(made) % 10**6}"
        tenant = tenant_services.provision_tenant(name=f"Docs {suffix}", slug=f"docs-{suffix}")
        issued = tenant_services.create_api_key(tenant=tenant, name="k")
        made.append(tenant)
        return TenantFixture(tenant=tenant, key=issued.plaintext, key_id=issued.key.id)

    yield make
    from django.db import connection

    from gateway.recorder import recorder

    recorder.flush()  # the server's background writes into these schemas end first
    connection.set_schema_to_public()
    for tenant in made:
        tenant.delete(force_drop=True)
