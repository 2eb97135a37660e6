"""Lost-call recovery: an explicitly cross-tenant job, every minute."""

from celery import shared_task
from django_tenants.utils import schema_context

from tenants.models import Tenant
from usage.services import sweep_lost_reservations


@shared_task(name="usage.sweep_lost_reservations", queue="bulk")
def sweep_all_tenants() -> dict[str, int]:
    swept = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            count = sweep_lost_reservations()
        if count:
            swept[tenant.slug] = count
    return swept
