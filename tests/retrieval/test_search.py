"""Hybrid search: tenant isolation whatever the filters, access tags, metadata filters inside
both retrievers, the full-text fallback when the embedder is down, and one embedding space."""

import pytest

from retrieval.selectors import search

from .conftest import DownEmbedder

pytestmark = pytest.mark.django_db

PASSWORD = "# Passwords\n\nReset your password from the sign-in page with the Forgot link."
INVOICES = "# Invoices\n\nInvoices are emailed to the billing contact every month."


def _documents(hits) -> list[int]:
    return [h.document_id for h in hits]


def test_tenant_b_never_sees_tenant_a_chunks(tenant_a, tenant_b, add_document):
    with tenant_a.context():
        secret = add_document(PASSWORD, title="A secret", metadata={"team": "a"})
    with tenant_b.context():
        own = add_document(INVOICES, title="B invoices")
        for filters in (None, {"team": "a"}, {"team": ["a", "b"]}, {"id": secret.id}):
            for tags in (None, ["staff"], ["*"]):
                result = search(query="reset password", top_k=10, filters=filters, access_tags=tags)
                # Ids are per schema (both tenants have a chunk 1), so compare what is shown.
                assert {h.title for h in result.hits} <= {"B invoices"}
                assert set(_documents(result.hits)) <= {own.id}
        # Full text alone, too (a degraded search must not widen anything).
        result = search(query="password", top_k=10, embedder=DownEmbedder())
        assert result.hits == []


def test_access_tags_limit_what_a_caller_sees(tenant_a, add_document):
    with tenant_a.context():
        public = add_document(INVOICES, title="Public")
        staff = add_document(PASSWORD, title="Staff only", access_tags=["staff", "admins"])
        assert set(_documents(search(query="password invoices", top_k=10).hits)) == {public.id}
        others = search(query="password", top_k=10, access_tags=["sales"])
        assert staff.id not in _documents(others.hits)
        allowed = search(query="password", top_k=10, access_tags=["admins"])
        assert _documents(allowed.hits)[0] == staff.id
        assert allowed.hits[0].retrievers.keys() == {"lexical", "vector"}


def test_metadata_filters_apply_inside_both_retrievers(tenant_a, add_document):
    with tenant_a.context():
        for n in range(12):
            add_document(f"# Exports {n}\n\nExport projects to CSV, variant {n}.", title=f"E{n}")
        crm = add_document(
            "# Exports\n\nThe CRM exports contacts to CSV.",
            title="CRM",
            metadata={"product": "crm"},
        )
        other = add_document(
            "# Exports\n\nThe wiki exports pages to CSV.",
            title="Wiki",
            metadata={"product": "wiki"},
        )
        result = search(query="export to CSV", top_k=3, filters={"product": "crm"})
        assert _documents(result.hits) == [crm.id]
        assert result.hits[0].retrievers.keys() == {"lexical", "vector"}
        both = search(query="export to CSV", top_k=3, filters={"product": ["crm", "wiki"]})
        assert set(_documents(both.hits)) == {crm.id, other.id}
        assert search(query="export to CSV", top_k=3, filters={"product": "hr"}).hits == []


def test_search_falls_back_to_full_text_when_the_embedder_is_down(tenant_a, add_document):
    with tenant_a.context():
        document = add_document(PASSWORD, title="Passwords")
        result = search(query="reset password", top_k=5, embedder=DownEmbedder())
        assert result.degraded
        assert "down" in result.degraded_reason
        assert result.retrievers == ("lexical",)
        assert _documents(result.hits) == [document.id]
        assert result.hits[0].retrievers.keys() == {"lexical"}


def test_embedder_none_setting_degrades_search(tenant_a, add_document, settings):
    with tenant_a.context():
        document = add_document(PASSWORD, title="Passwords")
        settings.SWITCHBOARD_EMBEDDER = "none"
        result = search(query="forgot password", top_k=5)
        assert result.degraded
        assert _documents(result.hits) == [document.id]


def test_vectors_of_another_space_are_never_compared(tenant_a, add_document, settings):
    with tenant_a.context():
        add_document(PASSWORD, title="Passwords")
        settings.SWITCHBOARD_EMBEDDER = "provider:embed-small"
        from retrieval.embedding import embedding_space

        assert embedding_space() == "provider:embed-small@384"

        class OtherSpace:
            name = "provider:embed-small@384"
            dimensions = 384

            def embed(self, texts):
                return [[1.0] + [0.0] * 383 for _ in texts]

        # "credentials" matches no word of the passage; only a vector could find it, and the
        # stored vectors are of the local space, not this one.
        result = search(query="lost my credentials", top_k=5, embedder=OtherSpace())
        assert result.hits == []
        assert not result.degraded


def test_search_for_feature_returns_context_and_records(tenant_a, add_document):
    from retrieval.services import search_for_feature

    with tenant_a.context():
        document = add_document(PASSWORD, title="Passwords", access_tags=["staff"])
        context, records = search_for_feature(
            tenant=tenant_a.tenant,
            feature=None,
            data={"question": "How do I reset my password?"},
            access_tags=["staff"],
        )
        assert records[0].document_id == document.id
        assert context[0].id == f"c{records[0].chunk_id}"
        assert context[0].title == "Passwords › Passwords"
        assert search_for_feature(
            tenant=tenant_a.tenant,
            feature=None,
            data={"question": "reset password"},
            access_tags=None,
        ) == ([], [])
