"""Which runs use the cache: auto (deterministic calls only), on, off; TTL; PII; console."""

import time

import pytest

from tests.cache.conftest import entries

pytestmark = pytest.mark.django_db(transaction=True)


def test_auto_caches_temperature_zero(make_feature, run, provider_calls):
    feature = make_feature(params={"temperature": 0})
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is True and provider_calls() == 1


@pytest.mark.parametrize("params", [{"temperature": 0.7}, {}])
def test_auto_leaves_non_deterministic_calls_alone(make_feature, run, provider_calls, params):
    feature = make_feature(params=params)
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 2


def test_on_caches_whatever_the_temperature(make_feature, run, provider_calls):
    feature = make_feature(params={"temperature": 0.7}, cache_mode="on")
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is True and provider_calls() == 1


def test_off_never_caches(make_feature, run, provider_calls, tenant_a):
    feature = make_feature(cache_mode="off")
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 2
    assert entries(tenant_a, feature.slug) == []


def test_entry_expires_after_its_ttl(make_feature, run, provider_calls):
    feature = make_feature(cache_ttl_seconds=1)
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is True
    time.sleep(1.2)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 2


def test_input_with_personal_data_is_never_cached(make_feature, run, provider_calls, tenant_a):
    feature = make_feature()
    question = "My email is jane.doe@example.com, how do I reset my password?"
    run(feature.slug, question)
    assert run(feature.slug, question).json()["cached"] is False and provider_calls() == 2
    assert entries(tenant_a, feature.slug) == []


def test_streaming_runs_skip_the_cache(make_feature, run, provider_calls, tenant_a):
    feature = make_feature()
    run(feature.slug)
    streamed = run(feature.slug, mode="stream")
    assert streamed.status_code == 200 and "event: delta" in streamed.text
    assert provider_calls() == 2


def test_editor_sets_the_policy_and_it_drops_the_entries(make_feature, run, staff, tenant_a):
    from prompts.models import ChangeLogEntry, Feature

    feature = make_feature()
    run(feature.slug)
    assert len(entries(tenant_a, feature.slug)) == 1
    url = f"/t/{tenant_a.slug}/prompts/{feature.slug}/cache/"
    form = {
        "cache_mode": "on",
        "cache_ttl_seconds": "120",
        "cache_max_distance": "0.02",
        "cache_personalised": "on",
        "cache_fallback_max_distance": "",
        "reason": "per user",
    }
    assert staff("viewer").post(url, form).status_code == 403
    editor = staff("editor")
    assert editor.post(url, form).status_code == 302
    with tenant_a.context():
        saved = Feature.objects.get(slug=feature.slug)
        change = ChangeLogEntry.objects.filter(feature=saved).first()
    assert saved.cache_mode == "on" and saved.cache_personalised
    assert saved.cache_ttl_seconds == 120 and saved.cache_max_distance == 0.02
    assert saved.cache_fallback_max_distance is None
    assert change.action == "cache" and change.after["cache_mode"] == "on"
    assert entries(tenant_a, feature.slug) == []
    page = editor.get(f"/t/{tenant_a.slug}/prompts/{feature.slug}/")
    assert b'id="cache-policy"' in page.content


def test_policy_out_of_range_is_refused(make_feature, staff, tenant_a):
    feature = make_feature()
    url = f"/t/{tenant_a.slug}/prompts/{feature.slug}/cache/"
    bad = {"cache_mode": "auto", "cache_ttl_seconds": "0", "cache_max_distance": "0.05"}
    staff("editor").post(url, bad)
    with tenant_a.context():
        from prompts.models import Feature

        assert Feature.objects.get(slug=feature.slug).cache_ttl_seconds == 3600


def test_expired_answers_are_purged_in_every_tenant(make_feature, run, tenant_a):
    from cache.tasks import purge_expired_answers

    feature = make_feature(cache_ttl_seconds=1)
    run(feature.slug)
    assert len(entries(tenant_a, feature.slug)) == 1
    time.sleep(1.2)
    assert purge_expired_answers().get(tenant_a.slug, 0) >= 1
    assert entries(tenant_a, feature.slug) == []
