"""Lost-call recovery and housekeeping of admission state: an explicitly cross-tenant job that
Celery beat runs every minute."""

import logging

from celery import shared_task
from django_tenants.utils import schema_context

from tenants.models import Tenant
from usage.services import prune_admission_state, sweep_lost_reservations

logger = logging.getLogger(__name__)


@shared_task(name="usage.sweep_lost_reservations", queue="bulk")
def sweep_all_tenants() -> dict[str, int]:
    """In every tenant schema: turn lost reservations into ``lost`` records, then delete spent
    rate windows and old settled reservations. Returns the swept count per tenant slug."""
    swept = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        try:
            with schema_context(tenant.schema_name):
                count = sweep_lost_reservations()
                prune_admission_state()
        except Exception:
            # One broken schema must not stop the recovery of every other tenant's calls.
            logger.exception("sweep failed", extra={"tenant": tenant.slug})
            continue
        if count:
            logger.warning("lost calls swept", extra={"tenant": tenant.slug, "count": count})
            swept[tenant.slug] = count
    return swept
