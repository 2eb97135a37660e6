"""A search running while a document is re-ingested sees the old version or the new one, never
a mix: a second connection searches in a loop while the new version is built and flipped."""

import threading

from django.db import connection
from django_tenants.utils import schema_context

from retrieval import services
from retrieval.models import Chunk
from retrieval.selectors import search


def test_search_during_reingest_sees_one_version(fresh_tenant):
    tenant, _key = fresh_tenant
    text = "\n\n".join(
        f"## Step {i}\n\nConfigure the export step {i} carefully." for i in range(30)
    )
    with schema_context(tenant.schema_name):
        document, _ = services.create_document(
            title="Export guide", content=text.encode(), media_type="text/markdown"
        )
        services.ingest_document(document_id=document.id, version=1)
        v1 = set(Chunk.objects.filter(document=document).values_list("id", flat=True))
        services.reingest_document(document=document)

    seen: list[frozenset[int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            with schema_context(tenant.schema_name):
                while not stop.is_set():
                    hits = search(query="configure export step", top_k=50, tenant=tenant).hits
                    seen.append(frozenset(h.chunk_id for h in hits))
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        with schema_context(tenant.schema_name):
            services.ingest_document(document_id=document.id, version=2, batch_size=2)
            v2 = set(Chunk.objects.filter(document=document).values_list("id", flat=True))
        # Let the searcher observe the new version too.
        before = len(seen)
        while len(seen) < before + 3 and not errors:
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert v1.isdisjoint(v2)
    assert len(seen) > 3
    for ids in seen:
        assert ids and (ids <= v1 or ids <= v2), "a search mixed two versions"
    assert any(ids <= v1 for ids in seen) and any(ids <= v2 for ids in seen)
