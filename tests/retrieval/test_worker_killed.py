"""A real Celery worker SIGKILLed in the middle of a document: the ingestion is recovered and
finished by another worker, with every chunk stored exactly once."""

import signal
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from retrieval import services
from retrieval.models import Chunk, Document
from retrieval.tasks import ingest_document
from tests.fixtures_shared import wait_until

pytestmark = pytest.mark.slow

SECTIONS = 400


def test_killed_worker_is_retried_without_duplicate_chunks(fresh_tenant, celery_worker):
    tenant, _key = fresh_tenant
    text = "\n\n".join(
        f"## Topic {i}\n\nParagraph {i} describes setting {i} and what it changes."
        for i in range(SECTIONS)
    )
    with schema_context(tenant.schema_name):
        document, _ = services.create_document(
            title="Big manual", content=text.encode(), media_type="text/markdown"
        )
    # One chunk per batch keeps the worker busy long enough to be killed mid-document.
    ingest_document.apply_async(args=[tenant.schema_name, document.id, 1, 1])

    def progress() -> Document:
        with schema_context(tenant.schema_name):
            return Document.objects.defer("content").get(pk=document.id)

    first = celery_worker()
    assert wait_until(lambda: progress().chunks_done >= 10, timeout=90), "worker never started"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = progress()
    assert killed_at.status == "processing"
    assert 10 <= killed_at.chunks_done < SECTIONS

    # The embedded broker lost the message with the worker; the sweep re-queues the document
    # once its lease has run out (simulated by sweeping "later").
    later = timezone.now() + timedelta(seconds=services.DEFAULT_LEASE_SECONDS + 1)
    with schema_context(tenant.schema_name):
        assert services.recover_stalled_ingestions(now=later) == [(document.id, 1)]
    celery_worker()
    done = wait_until(lambda: progress().status == "ready", timeout=300)
    assert done, f"not finished: {progress().status} {progress().chunks_done}"

    with schema_context(tenant.schema_name):
        finished = progress()
        ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(SECTIONS))  # every chunk once, none twice
    assert (finished.chunks_done, finished.chunks_total) == (SECTIONS, SECTIONS)
    assert finished.attempts == 2
    assert finished.current_version == 1
