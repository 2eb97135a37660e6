"""Celery tasks of the conversations app (queue "bulk"). Each names the tenant's schema."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import schema_context

from conversations import services
from tenants.models import Tenant


@shared_task(
    bind=True,
    name="conversations.summarise",
    queue="bulk",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=5,
)
def summarise_conversation(self, schema_name: str, conversation_id: str) -> str:
    """Fold a conversation's older turns into its summary; retried with backoff when the
    summariser is unavailable (the prompt meanwhile keeps the turns that fit)."""
    tenant = Tenant.objects.select_related("plan").get(schema_name=schema_name)
    with schema_context(schema_name):
        outcome = services.summarise_conversation(conversation_id=conversation_id, tenant=tenant)
    if outcome.status == "failed" and self.request.retries < self.max_retries:
        raise self.retry(countdown=min(300, 5 * 2**self.request.retries))
    return outcome.status
