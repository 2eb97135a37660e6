"""Cache fixtures: features of the test's own (unique slugs, published, routed to the test
deployments), feature runs over real HTTP, and the usage and audit records of a run."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest

from tests.fixtures_gateway import wait_for

_n = itertools.count()

QUESTION = "How do I reset my password?"


@pytest.fixture
def make_feature(routing, tenant_a):
    """Factory: a feature with one published version ("Question: {{ question }}") in a tenant;
    removed with its cached answers afterwards. Policy fields (cache_*) may be given."""
    from cache.services import purge_feature
    from prompts import services
    from prompts.models import Feature, FeatureDeployment

    made = []

    def make(
        tenant=None,
        *,
        slug: str | None = None,
        params: dict | None = None,
        system: str = "Answer the customer's question in one sentence.",
        uses_retrieval: bool = False,
        **policy,
    ):
        tenant = tenant or tenant_a
        slug = slug or f"cache-{next(_n)}-{uuid.uuid4().hex[:8]}"
        with tenant.context():
            feature = Feature.objects.create(
                slug=slug,
                name=slug,
                model_alias="chat",
                uses_retrieval=uses_retrieval,
                degraded_text="Answers are unavailable right now.",
                **policy,
            )
            version = services.create_version(
                feature=feature,
                system=system,
                user_template="Question: {{ question }}",
                context_template="Documents:\n{{ context }}" if uses_retrieval else "",
                variables=["question"],
                params={"temperature": 0, "max_tokens": 200} if params is None else params,
            )
            services.publish(version=version, actor=services.SYSTEM)
            feature.refresh_from_db()
        made.append((tenant, slug))
        return feature

    yield make
    for tenant, slug in made:
        with tenant.context():
            purge_feature(feature_slug=slug)
            FeatureDeployment.objects.filter(feature__slug=slug).delete()
            Feature.objects.filter(slug=slug).delete()


@pytest.fixture
def run(asgi_server, tenant_a):
    """POST a feature run over HTTP; ``question`` is the feature's one input variable."""

    def post(slug: str, question: str = QUESTION, tenant=None, **body):
        tenant = tenant or tenant_a
        return httpx.post(
            f"{asgi_server.url}/api/v1/features/{slug}/runs",
            json={"input": {"question": question}, **body},
            headers={"Authorization": f"Bearer {tenant.key}"},
            timeout=30,
        )

    return post


@pytest.fixture
def provider_calls(simulator, simulator_b):
    """How many chat calls both fake providers have received so far."""

    def count() -> int:
        return simulator.request_count("/v1/chat/completions") + simulator_b.request_count(
            "/v1/messages"
        )

    return count


@pytest.fixture
def records():
    """The (usage, audit) records of a call id, once the recorder has written them."""
    from audit.models import AuditRecord
    from usage.models import UsageRecord

    def fetch(tenant, call_id: str):
        with tenant.context():
            usage = wait_for(lambda: list(UsageRecord.objects.filter(call_id=call_id)))
            audit = wait_for(lambda: list(AuditRecord.objects.filter(call_id=call_id)))
        assert len(usage) == 1 and len(audit) == 1, (usage, audit)
        return usage[0], audit[0]

    return fetch


def entries(tenant, slug: str) -> list:
    from cache.models import CacheEntry

    with tenant.context():
        return list(CacheEntry.objects.filter(feature=slug))
