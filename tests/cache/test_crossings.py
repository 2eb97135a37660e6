"""Each crossing the issue names is impossible: tenant to tenant, user to user on a personalised
feature, prompt to prompt (another version, another feature, publish and rollback), and
conversation to conversation."""

import pytest
from asgiref.sync import async_to_sync

from tests.cache.conftest import QUESTION, entries

pytestmark = pytest.mark.django_db(transaction=True)


def test_tenant_b_never_gets_tenant_a_answer(make_feature, run, provider_calls, tenant_a, tenant_b):
    slug = make_feature(tenant_a).slug
    make_feature(tenant_b, slug=slug)  # the same feature, prompt and model in both tenants
    assert run(slug, tenant=tenant_a).status_code == 200
    assert run(slug, tenant=tenant_a).json()["cached"] is True
    other = run(slug, tenant=tenant_b)
    assert other.status_code == 200
    assert other.json()["cached"] is False and provider_calls() == 2
    assert len(entries(tenant_b, slug)) == 1  # tenant B's own answer, in its own schema


def test_a_copied_entry_matches_nothing_in_another_tenant(
    make_feature, run, provider_calls, tenant_a, tenant_b
):
    """Even tenant A's row copied verbatim into tenant B's schema is not served there: the
    tenant is part of both keys."""

    slug = make_feature(tenant_a).slug
    make_feature(tenant_b, slug=slug)
    run(slug, tenant=tenant_a)
    [entry] = entries(tenant_a, slug)
    with tenant_b.context():
        entry.pk = None
        entry.save()
    response = run(slug, tenant=tenant_b)
    assert response.json()["cached"] is False and provider_calls() == 2


def test_personalised_feature_never_serves_one_user_to_another(make_feature, run, provider_calls):
    feature = make_feature(cache_personalised=True)
    assert run(feature.slug, user="alice").json()["cached"] is False
    assert run(feature.slug, user="alice").json()["cached"] is True
    assert run(feature.slug, user="bob").json()["cached"] is False
    assert run(feature.slug, "How can I reset my password?", user="bob").json()["cached"] is True
    assert provider_calls() == 2
    # an anonymous caller of a personalised feature is never cached at all
    run(feature.slug)
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 4


def test_shared_feature_serves_every_user(make_feature, run, provider_calls):
    feature = make_feature()
    run(feature.slug, user="alice")
    assert run(feature.slug, user="bob").json()["cached"] is True and provider_calls() == 1


def test_another_feature_with_the_same_prompt_misses(make_feature, run, provider_calls):
    one, two = make_feature(), make_feature()
    run(one.slug)
    assert run(two.slug).json()["cached"] is False and provider_calls() == 2


def test_publish_and_rollback_invalidate(make_feature, run, provider_calls, tenant_a):
    from prompts import services
    from prompts.models import Feature

    feature = make_feature()
    first = run(feature.slug).json()
    assert run(feature.slug).json()["cached"] is True
    with tenant_a.context():
        feature = Feature.objects.get(slug=feature.slug)
        v2 = services.create_version(
            feature=feature,
            system="Answer in two short sentences, politely.",
            user_template="Question: {{ question }}",
            variables=["question"],
            params={"temperature": 0},
        )
        services.publish(version=v2, actor=services.SYSTEM)
    assert entries(tenant_a, feature.slug) == []
    after_publish = run(feature.slug).json()
    assert after_publish["cached"] is False and after_publish["prompt_version"] == "v2"
    assert run(feature.slug).json()["cached"] is True and provider_calls() == 2

    with tenant_a.context():
        services.rollback(feature=feature, actor=services.SYSTEM)
    assert entries(tenant_a, feature.slug) == []
    after_rollback = run(feature.slug).json()
    assert after_rollback["cached"] is False
    assert after_rollback["prompt_version"] == first["prompt_version"] == "v1"
    assert provider_calls() == 3


def test_an_answer_of_the_previous_generation_is_never_stored_for_the_new(
    make_feature, tenant_a, routing, provider_calls
):
    """A run prepared before a publish that finishes after it stores under the old generation:
    the serving state after the publish cannot read it."""
    from gateway.service import execute_chat
    from prompts import services
    from prompts.models import Feature
    from prompts.runs import _context, prepare_run

    feature = make_feature()
    with tenant_a.context():
        before = prepare_run(
            tenant=tenant_a.tenant, slug=feature.slug, data={"question": QUESTION}, end_user=""
        )
        feature = Feature.objects.get(slug=feature.slug)
        v2 = services.create_version(
            feature=feature,
            system="Another instruction.",
            user_template="Question: {{ question }}",
            variables=["question"],
            params={"temperature": 0},
        )
        services.publish(version=v2, actor=services.SYSTEM)
        services.rollback(feature=feature, actor=services.SYSTEM)  # v1 serves again
    ctx = _context(
        before, tenant=tenant_a.tenant, request_id="late", key=None, end_user="", mode="sync"
    )
    async_to_sync(execute_chat)(ctx, before.request, cache=before.cache)
    assert provider_calls() == 1
    with tenant_a.context():
        now = prepare_run(
            tenant=tenant_a.tenant, slug=feature.slug, data={"question": QUESTION}, end_user=""
        )
    assert now.version.id == before.version.id and now.cache.generation > before.cache.generation
    ctx = _context(
        now, tenant=tenant_a.tenant, request_id="now", key=None, end_user="", mode="sync"
    )
    outcome = async_to_sync(execute_chat)(ctx, now.request, cache=now.cache)
    assert outcome.cached is False and provider_calls() == 2


def _run_in(tenant, slug: str, conversation_id: str | None, question: str = QUESTION):
    from prompts.runs import execute_run

    _, outcome = async_to_sync(execute_run)(
        tenant=tenant.tenant,
        slug=slug,
        data={"question": question},
        end_user="carol",
        request_id=f"conv-{conversation_id}",
        conversation_id=conversation_id,
    )
    return outcome


def test_an_entry_made_in_a_conversation_stays_in_it(make_feature, tenant_a, provider_calls):
    from cache.services import purge_conversation
    from conversations.services import create_conversation

    slug = make_feature().slug
    with tenant_a.context():
        c1, c2, c3 = (create_conversation(end_user="carol").pk for _ in range(3))
    # Each new conversation's first run sends exactly the same prompt (no history yet), so only
    # the conversation in the cache scope keeps one conversation's answer out of another.
    assert _run_in(tenant_a, slug, c1).cached is False
    assert _run_in(tenant_a, slug, c2).cached is False
    assert _run_in(tenant_a, slug, None).cached is False
    assert provider_calls() == 3
    # An answer made outside any conversation is served outside (same prompt, same scope)…
    assert _run_in(tenant_a, slug, None).cached is True
    # …but not inside one.
    assert _run_in(tenant_a, slug, c3).cached is False
    # Inside a conversation the history is part of the prompt: the same question after an
    # exchange is a new request, not a replay of the first answer.
    assert _run_in(tenant_a, slug, c1).cached is False

    with tenant_a.context():
        assert purge_conversation(conversation_id=c1) == 2
        assert purge_conversation(conversation_id=c1) == 0
    assert {e.conversation_id for e in entries(tenant_a, slug)} == {c2, None, c3}
    assert _run_in(tenant_a, slug, c1).cached is False
