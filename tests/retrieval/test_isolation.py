"""Tenant B's search never returns tenant A's chunks, whatever it sends: through the API with
every shape of filter, tag, query and page size, in hybrid and in degraded (full-text) mode,
and through A's ids. The same request by A finds the passage, so each absence means something."""

import pytest

from retrieval import services
from retrieval.models import Chunk, Document

pytestmark = pytest.mark.django_db

SECRET = (
    "# Acquisition plan\n\nProject QUOKKAFIRE: the board approved the acquisition of Initech "
    "for 40 million; keep the price confidential."
)
PUBLIC = "# Invoices\n\nInvoices are e-mailed to the billing contact on the first of the month."

FILTERS = [
    None,
    {},
    {"team": "a"},
    {"team": ["a", "b", "c"]},
    {"confidential": True},
    {"document_id": 1},
    {"schema": "tenant_a"},
    {"x') OR 1=1 --": "y"},
    {"team": "a' OR '1'='1"},
]
TAGS = [None, [], ["board"], ["*", "%"], ["board", "staff", "' OR 1=1 --"]]
QUERIES = ["QUOKKAFIRE", "board approved the acquisition of Initech", "-x"]


def _ingest(tenant, text: str, **fields) -> Document:
    with tenant.context():
        document, _ = services.create_document(
            content=text.encode(), media_type="text/markdown", enqueue=False, **fields
        )
        services.ingest_document(document_id=document.id, version=document.ingesting_version)
        return Document.objects.defer("content").get(pk=document.id)


def _search(client, tenant, query: str, **body):
    response = client.post(
        "/api/v1/search",
        {"query": query, "top_k": 50, **{k: v for k, v in body.items() if v is not None}},
        content_type="application/json",
        **tenant.headers(),
    )
    assert response.status_code in (200, 400), response.content
    return response


@pytest.fixture
def secret(tenant_a):
    return _ingest(
        tenant_a,
        SECRET,
        title="Board secret",
        metadata={"team": "a", "confidential": True, "schema": "tenant_a", "document_id": 1},
        access_tags=["board"],
    )


@pytest.mark.parametrize("degraded", [False, True], ids=["hybrid", "full-text-only"])
def test_tenant_b_search_never_returns_tenant_a_chunks(
    client, tenant_a, tenant_b, secret, settings, degraded
):
    if degraded:
        settings.SWITCHBOARD_EMBEDDER = "none"
    own = _ingest(tenant_b, PUBLIC, title="B invoices", metadata={"team": "a"})
    with tenant_a.context():
        secret_chunks = set(Chunk.objects.filter(document=secret).values_list("text", flat=True))
    # The same request by A, with its tag, finds the passage.
    found = _search(client, tenant_a, "QUOKKAFIRE", access_tags=["board"]).json()
    assert found["results"][0]["document_id"] == secret.id
    assert found["degraded"] is degraded
    for query in QUERIES:
        for filters in FILTERS:
            for tags in TAGS:
                response = _search(client, tenant_b, query, filters=filters, access_tags=tags)
                if response.status_code == 400:
                    continue  # refused outright: nothing returned either
                results = response.json()["results"]
                assert {r["text"] for r in results}.isdisjoint(secret_chunks), (
                    query,
                    filters,
                    tags,
                )
                assert all("QUOKKAFIRE" not in r["text"] for r in results)
                # Ids are per schema (both tenants may have a document 1): the title tells.
                assert {r["title"] for r in results} <= {"B invoices"}
                assert {r["document_id"] for r in results} <= {own.id}


def test_tenant_b_cannot_reach_tenant_a_documents_by_id(client, tenant_a, tenant_b, secret):
    with tenant_b.context():
        assert not Document.objects.filter(title="Board secret").exists()
    for method, path in [
        ("get", f"/api/v1/documents/{secret.id}"),
        ("post", f"/api/v1/documents/{secret.id}/reingest"),
        ("delete", f"/api/v1/documents/{secret.id}"),
    ]:
        assert getattr(client, method)(path, **tenant_b.headers()).status_code == 404
    listed = client.get("/api/v1/documents?limit=100", **tenant_b.headers()).json()
    assert "Board secret" not in {d["title"] for d in listed["data"]}
    with tenant_a.context():
        assert Document.objects.get(pk=secret.id).status == "ready"


def test_tenant_a_key_on_tenant_b_host_is_refused(client, tenant_a, tenant_b, secret, settings):
    settings.ALLOWED_HOSTS = [".switchboard.test"]
    response = client.post(
        "/api/v1/search",
        {"query": "QUOKKAFIRE", "access_tags": ["board"]},
        content_type="application/json",
        HTTP_HOST="b.switchboard.test",
        **tenant_a.headers(),
    )
    assert response.status_code == 403
    assert "QUOKKAFIRE" not in response.content.decode()
