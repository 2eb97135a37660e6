"""Retention: a daily, explicitly cross-tenant job."""

from celery import shared_task
from django_tenants.utils import schema_context

from audit.services import purge_expired
from tenants.models import Tenant


@shared_task(name="audit.purge_expired_records", queue="bulk")
def purge_expired_records() -> dict[str, int]:
    purged = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            result = purge_expired(retention_days=tenant.retention_days)
        if result.records_purged:
            purged[tenant.slug] = result.records_purged
    return purged
