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
def celery_worker(transactional_db):
    """Factory for real Celery worker processes (queue "bulk") on the test database and this
    test process's own embedded broker folder; each is SIGKILLed at the end of the test."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
        SWITCHBOARD_ENV="local",
        LOG_LEVEL="WARNING",
    )
    inbox = settings.EMBEDDED_BROKER_DIR / "in"
    for message in inbox.glob("*") if inbox.is_dir() else []:
        message.unlink(missing_ok=True)
    started: list[subprocess.Popen] = []
    root = Path(__file__).resolve().parent.parent.parent

    def start() -> subprocess.Popen:
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo"]
        command += ["-Q", "bulk", "--without-heartbeat", "--without-gossip", "--without-mingle"]
        proc = subprocess.Popen(
            [*command, "--loglevel", "WARNING"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("SWITCHBOARD_TEST_WORKER_LOG", os.devnull), "ab"),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


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
