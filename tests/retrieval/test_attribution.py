"""The local embedder's document work is the tenant's: each ingestion batch is a usage record (endpoint ``embeddings``, provider ``local``, tokens counted, no cost) with an audit
record beside it, and the tokens count on the tenant's budget counter."""

import pytest

from audit.models import AuditRecord
from gateway.recorder import recorder
from retrieval import selectors
from usage.models import BudgetCounter, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = "# Exports\n\nProjects export as CSV from the Reports page.\n"


def test_local_embeddings_are_recorded_in_the_tenants_usage(fresh_tenant, add_document):
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from usage.services import _ensure_counters, period_of

    tenant, _ = fresh_tenant
    with schema_context(tenant.schema_name):
        _ensure_counters(["tenant"], period_of(timezone.now()))  # as the first admission does
        add_document(GUIDE, title="Exports")
        recorder.flush()
        ingested = list(UsageRecord.objects.filter(endpoint="embeddings"))
        assert len(ingested) == 1  # one batch
        record = ingested[0]
        assert record.provider == "local" and record.deployment == "local:all-MiniLM-L6-v2"
        assert record.feature == "retrieval" and record.status == "ok"
        assert record.input_tokens > 10 and record.cost == 0
        assert AuditRecord.objects.filter(call_id=record.call_id).exists()

        # A query embedding is part of the request it serves: not a record of its own.
        result = selectors.search(query="How do I export projects?", tenant=tenant)
        assert result.hits
        recorder.flush()
        assert UsageRecord.objects.filter(endpoint="embeddings").count() == 1
        counted = BudgetCounter.objects.get(scope_key="tenant").tokens_used
        tokens = sum(r.input_tokens for r in UsageRecord.objects.filter(endpoint="embeddings"))
        assert counted == tokens


def test_another_tenant_sees_none_of_it(fresh_tenant, tenant_b, add_document):
    from django_tenants.utils import schema_context

    tenant, _ = fresh_tenant
    with tenant_b.context():
        before = UsageRecord.objects.filter(endpoint="embeddings").count()
    with schema_context(tenant.schema_name):
        add_document(GUIDE, title="Exports")
        recorder.flush()
    with tenant_b.context():
        assert UsageRecord.objects.filter(endpoint="embeddings").count() == before


def test_a_tenant_over_its_token_budget_ingests_for_full_text_only(fresh_tenant, add_document):
    from decimal import Decimal

    from django_tenants.utils import schema_context

    from retrieval.models import Chunk, Document
    from usage.services import set_limit

    tenant, _ = fresh_tenant
    with schema_context(tenant.schema_name):
        set_limit(
            tenant=tenant, scope="tenant", scope_value="", metric="monthly_tokens", hard=Decimal(5)
        )
        document = add_document(GUIDE, title="Exports")
        assert document.status == Document.Status.READY  # stored, searchable by full text
        assert not Chunk.objects.filter(document=document, embedding__isnull=False).exists()
        record = UsageRecord.objects.get(endpoint="embeddings")
        assert record.status == "refused" and record.http_status == 429
        assert record.input_tokens == 0
        result = selectors.search(query="export projects CSV", tenant=tenant)
        assert result.hits  # the lexical retriever still finds it
