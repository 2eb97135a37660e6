"""The ladder's similar-answer rung during an outage, and answers built from documents that
changed since."""

import pytest

from tests.cache.conftest import QUESTION, entries

pytestmark = pytest.mark.django_db(transaction=True)

PARAPHRASE = "What is the way to reset my password?"  # ~0.03 from QUESTION


def test_outage_serves_a_similar_recent_answer(
    make_feature, run, simulator, simulator_b, records, tenant_a
):
    # exact answers only while the providers are up; similar ones when they are all down
    feature = make_feature(cache_max_distance=0.0, cache_fallback_max_distance=0.15)
    original = run(feature.slug, QUESTION).json()
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = run(feature.slug, PARAPHRASE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cached"] is True and body["degraded"] is False
    assert body["output"] == original["output"]
    usage, audit = records(tenant_a, body["id"])
    assert usage.cache_hit and usage.fallback_used and usage.cost == 0
    assert usage.tokens_saved == 0  # the provider was tried: nothing was saved
    assert audit.cache_hit and audit.fallback_used and "similar_answer" in audit.flags
    assert "cache_layer:similar" in audit.flags and audit.attempts  # the failed tries stay

    unrelated = run(feature.slug, "Can I pay by bank transfer?").json()
    assert unrelated["cached"] is False and unrelated["degraded"] is True
    assert unrelated["output"] == "Answers are unavailable right now."


def test_the_rung_can_be_turned_off(make_feature, run, simulator, simulator_b):
    feature = make_feature(cache_max_distance=0.0, cache_fallback_max_distance=None)
    run(feature.slug, QUESTION)
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    body = run(feature.slug, PARAPHRASE).json()
    assert body["cached"] is False and body["degraded"] is True


def test_the_rung_serves_even_a_feature_without_a_degraded_answer(
    make_feature, run, simulator, simulator_b
):
    feature = make_feature(cache_max_distance=0.0, allow_degraded=False)
    run(feature.slug, QUESTION)
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    assert run(feature.slug, PARAPHRASE).json()["cached"] is True
    assert run(feature.slug, "Can I pay by bank transfer?").status_code == 503


@pytest.fixture
def document(tenant_a):
    """A document ingested in tenant A now (in-process, the local embedder); deleted after."""
    from retrieval import services

    with tenant_a.context():
        doc, _ = services.create_document(
            title="Password help",
            content=b"# Resetting a password\n\nOpen Settings, choose Security, then "
            b"Reset password. A link valid for 30 minutes arrives by email. zq-cache-test",
            media_type="text/markdown",
            enqueue=False,
        )
        services.ingest_document(document_id=doc.id, version=doc.ingesting_version)
        doc.refresh_from_db()
    yield doc
    with tenant_a.context():
        services.delete_document(document=doc)


def _reingest(tenant, doc):
    from retrieval import services

    with tenant.context():
        queued = services.reingest_document(document=doc)
        services.ingest_document(document_id=doc.id, version=queued.ingesting_version)
        doc.refresh_from_db()
    return doc


def test_a_changed_source_document_is_never_served(
    make_feature, run, provider_calls, tenant_a, document
):
    feature = make_feature(uses_retrieval=True)
    run(feature.slug)
    [entry] = entries(tenant_a, feature.slug)
    assert entry.sources[str(document.id)] == document.current_version
    assert run(feature.slug).json()["cached"] is True and provider_calls() == 1

    _reingest(tenant_a, document)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 2


def test_lookup_drops_an_entry_whose_document_changed(make_feature, run, tenant_a, document):
    """The read-time check itself: the same keys that found the entry find nothing once one of
    its documents serves a new version, and the stale entry is removed."""
    from cache.keys import CacheKeys, CacheScope
    from cache.services import lookup_answer

    feature = make_feature(uses_retrieval=True)
    run(feature.slug)
    [entry] = entries(tenant_a, feature.slug)
    scope = CacheScope(
        feature=feature.slug,
        prompt_version_id=entry.prompt_version_id,
        generation=entry.generation,
        ttl_seconds=60,
        max_distance=0.05,
        fallback_max_distance=None,
        query_text=entry.input_text,
    )
    keys = CacheKeys(
        exact=entry.exact_key,
        semantic=entry.semantic_key,
        context_fingerprint=entry.context_fingerprint,
    )
    with tenant_a.context():
        assert lookup_answer(scope=scope, keys=keys).entry == entry
    _reingest(tenant_a, document)
    with tenant_a.context():
        assert lookup_answer(scope=scope, keys=keys).entry is None
    assert entries(tenant_a, feature.slug) == []


def test_a_deleted_source_document_is_never_served(
    make_feature, run, provider_calls, tenant_a, document
):
    from retrieval import services

    feature = make_feature(uses_retrieval=True)
    run(feature.slug)
    with tenant_a.context():
        services.delete_document(document=document)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 2
