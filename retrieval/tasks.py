"""Celery tasks of the retrieval app (queue "bulk"). Each names the tenant's schema explicitly."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import schema_context

from retrieval import services
from tenants.models import Tenant


@shared_task(
    bind=True,
    name="retrieval.ingest_document",
    queue="bulk",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=20,
)
def ingest_document(
    self, schema_name: str, document_id: int, version: int, batch_size: int | None = None
) -> str:
    """Ingest one version of a document; idempotent, so a redelivered message is harmless."""
    with schema_context(schema_name):
        outcome = services.ingest_document(
            document_id=document_id,
            version=version,
            batch_size=batch_size or services.DEFAULT_BATCH_SIZE,
        )
    if outcome.retry_in is not None:
        # Another worker holds the lease; if it died, the lease runs out and we take over.
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="retrieval.recover_stalled_ingestions", queue="bulk")
def recover_stalled_ingestions() -> dict[str, int]:
    """Explicitly cross-tenant: re-queue ingestions whose worker died or whose message was lost
    (the embedded filesystem broker drops a message its worker took before being killed)."""
    recovered = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            count = len(services.recover_stalled_ingestions())
        if count:
            recovered[tenant.slug] = count
    return recovered
