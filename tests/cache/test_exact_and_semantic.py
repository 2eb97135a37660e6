"""The two layers: an exact repeat and a close paraphrase are served without a provider call,
and recorded as hits; a farther question, a stricter caller, a bypass are not."""

from decimal import Decimal

import pytest

from tests.cache.conftest import QUESTION, entries

pytestmark = pytest.mark.django_db(transaction=True)

PARAPHRASE = "How can I reset my password?"  # cosine distance ~0.008 (MiniLM)
FARTHER_PARAPHRASE = "What is the way to reset my password?"  # ~0.03
ANOTHER_QUESTION = "How do I reset my password on the mobile app?"  # ~0.22


def test_exact_repeat_is_served_without_a_provider_call(
    make_feature, run, provider_calls, records, tenant_a
):
    feature = make_feature()
    first = run(feature.slug)
    assert first.status_code == 200, first.text
    assert first.json()["cached"] is False and provider_calls() == 1
    [entry] = entries(tenant_a, feature.slug)

    again = run(feature.slug)
    assert again.status_code == 200, again.text
    body = again.json()
    assert provider_calls() == 1  # the provider never saw the repeat
    assert body["cached"] is True and body["output"] == first.json()["output"]
    assert body["id"] != first.json()["id"] and body["usage"]["cost"] == "0"
    assert again.headers["X-Switchboard-Cache"] == "exact"

    usage, audit = records(tenant_a, body["id"])
    served_usage, _ = records(tenant_a, first.json()["id"])
    assert usage.cache_hit and usage.cost == Decimal("0")
    assert usage.input_tokens == usage.output_tokens == 0
    assert usage.tokens_saved == served_usage.input_tokens + served_usage.output_tokens > 0
    assert usage.attempts == 0 and "cache" in usage.latency_ms
    assert audit.cache_hit and f"cache_entry:{entry.id}" in audit.flags
    assert "cache_layer:exact" in audit.flags and audit.raw_output == entry.content


def test_paraphrase_is_a_semantic_hit(make_feature, run, provider_calls, records, tenant_a):
    feature = make_feature()
    original = run(feature.slug, QUESTION).json()
    response = run(feature.slug, PARAPHRASE)
    assert response.status_code == 200, response.text
    assert provider_calls() == 1
    assert response.json()["cached"] is True
    assert response.json()["output"] == original["output"]
    assert response.headers["X-Switchboard-Cache"] == "semantic"
    _, audit = records(tenant_a, response.json()["id"])
    assert "cache_layer:semantic" in audit.flags


def test_question_beyond_the_threshold_is_a_miss(make_feature, run, provider_calls):
    feature = make_feature()
    run(feature.slug, QUESTION)
    response = run(feature.slug, ANOTHER_QUESTION)
    assert response.status_code == 200
    assert response.json()["cached"] is False and provider_calls() == 2


def test_feature_threshold_decides(make_feature, run, provider_calls):
    feature = make_feature(cache_max_distance=0.005)
    run(feature.slug, QUESTION)
    assert run(feature.slug, PARAPHRASE).json()["cached"] is False
    assert provider_calls() == 2


def test_caller_may_tighten_the_threshold(make_feature, run, provider_calls):
    feature = make_feature()
    run(feature.slug, QUESTION)
    strict = run(feature.slug, FARTHER_PARAPHRASE, cache={"max_distance": 0.01})
    assert strict.status_code == 200 and strict.json()["cached"] is False
    assert provider_calls() == 2


def test_caller_cannot_loosen_the_threshold(make_feature, run, provider_calls):
    feature = make_feature()
    run(feature.slug, QUESTION)
    loose = run(feature.slug, ANOTHER_QUESTION, cache={"max_distance": 1.5})
    assert loose.status_code == 200  # clamped to the feature's 0.05, not refused
    assert loose.json()["cached"] is False and provider_calls() == 2


def test_bypass_asks_the_provider_and_refreshes_the_entry(make_feature, run, provider_calls):
    feature = make_feature()
    run(feature.slug)
    fresh = run(feature.slug, cache={"bypass": True})
    assert fresh.json()["cached"] is False and provider_calls() == 2
    assert run(feature.slug).json()["cached"] is True and provider_calls() == 2


@pytest.mark.parametrize(
    "options", [{"max_distance": -0.1}, {"max_distance": "far"}, {"bypass": "sometimes"}, []]
)
def test_bad_cache_options_are_400(make_feature, run, options):
    feature = make_feature()
    response = run(feature.slug, cache=options)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith("cache")


def test_hits_are_counted_on_the_entry(make_feature, run, tenant_a):
    from tests.fixtures_gateway import wait_for

    feature = make_feature()
    run(feature.slug)
    run(feature.slug)
    run(feature.slug, PARAPHRASE)
    [entry] = wait_for(lambda: [e for e in entries(tenant_a, feature.slug) if e.hit_count == 2])
    assert entry.last_hit_at is not None
