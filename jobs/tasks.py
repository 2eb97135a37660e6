"""Celery tasks for async runs. Each task names the tenant's schema explicitly."""

from celery import shared_task
from django_tenants.utils import schema_context

from jobs import services
from tenants.models import Tenant


@shared_task(name="jobs.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job(schema_name: str, job_id: str) -> None:
    tenant = Tenant.objects.select_related("plan").get(schema_name=schema_name)
    with schema_context(schema_name):
        services.run_job(tenant, job_id)


@shared_task(name="jobs.recover_stale_jobs", queue="bulk")
def recover_stale_jobs() -> dict[str, int]:
    """Explicitly cross-tenant: requeue (or fail) jobs whose worker died mid-run."""
    recovered = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            count = services.recover_stale_jobs()
        if count:
            recovered[tenant.slug] = count
    return recovered


@shared_task(name="jobs.deliver_webhook", queue="webhooks")
def deliver_webhook(schema_name: str, delivery_id: int) -> None:
    from jobs.models import WebhookDelivery
    from jobs.webhooks import attempt

    with schema_context(schema_name):
        delivery = (
            WebhookDelivery.objects.select_related("endpoint")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
            .first()
        )
        if delivery is not None and delivery.endpoint.enabled:
            attempt(delivery)


@shared_task(name="jobs.evaluate_alerts", queue="bulk")
def evaluate_alerts() -> dict[str, int]:
    """Explicitly cross-tenant: raise the alerts that are due in every tenant."""
    from jobs.alerts import evaluate

    raised = {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE):
        with schema_context(tenant.schema_name):
            count = len(evaluate(tenant))
        if count:
            raised[tenant.slug] = count
    return raised
