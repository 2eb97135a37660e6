"""Celery tasks of the answer cache (queue "bulk")."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import schema_context

from cache import services
from tenants.models import Tenant


@shared_task(name="cache.purge_expired_answers", queue="bulk")
def purge_expired_answers() -> dict[str, int]:
    """Explicitly cross-tenant: remove expired cached answers in every tenant's schema. They
    are never served (lookups check the expiry); this only reclaims the space."""
    purged = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            count = services.purge_expired()
        if count:
            purged[tenant.slug] = count
    return purged
