"""The operator's page (superusers): every tenant's spend and errors, deployment health
(circuit states, error rates and latency per deployment), queue depths and job ages.

This is an explicitly cross-tenant read: it visits each tenant's schema in turn."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Avg, Count, Min, Q, Sum
from django.shortcuts import render
from django.utils import timezone
from django_tenants.utils import schema_context

from gateway.metrics import _queue_depths
from gateway.models import CircuitState
from jobs.models import Job
from tenants.decorators import superuser_view
from tenants.models import Tenant
from usage.models import UsageRecord

WINDOW = timedelta(hours=24)


def _tenant_figures(tenant, since) -> tuple[dict, list[dict], dict]:
    with schema_context(tenant.schema_name):
        rows = UsageRecord.objects.filter(created_at__gte=since)
        totals = rows.aggregate(
            requests=Count("id"),
            cost=Sum("cost"),
            errors=Count("id", filter=Q(status__in=["failed", "interrupted", "lost"])),
            degraded=Count("id", filter=Q(degraded=True)),
        )
        per_deployment = list(
            rows.exclude(deployment="")
            .values("deployment")
            .annotate(
                calls=Count("id"),
                failures=Count("id", filter=Q(status="failed")),
                fallbacks=Count("id", filter=Q(fallback_used=True)),
                mean_ms=Avg("total_ms"),
            )
        )
        jobs = Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).aggregate(
            waiting=Count("id"), oldest=Min("created_at")
        )
    return totals, per_deployment, jobs


@superuser_view
def operator(request):
    since = timezone.now() - WINDOW
    tenants, deployments = [], {}
    for tenant in Tenant.objects.exclude(status=Tenant.Status.TEMPLATE).order_by("name"):
        totals, per_deployment, jobs = _tenant_figures(tenant, since)
        oldest = jobs["oldest"]
        tenants.append(
            {
                "tenant": tenant,
                **totals,
                "jobs_waiting": jobs["waiting"],
                "oldest_job_age": (timezone.now() - oldest) if oldest else None,
            }
        )
        for row in per_deployment:
            agg = deployments.setdefault(
                row["deployment"], {"calls": 0, "failures": 0, "fallbacks": 0, "ms_sum": 0.0}
            )
            agg["calls"] += row["calls"]
            agg["failures"] += row["failures"]
            agg["fallbacks"] += row["fallbacks"]
            agg["ms_sum"] += (row["mean_ms"] or 0) * row["calls"]
    circuits = {c.deployment: c for c in CircuitState.objects.all()}
    health = []
    for name in sorted(set(deployments) | set(circuits)):
        agg = deployments.get(name, {"calls": 0, "failures": 0, "fallbacks": 0, "ms_sum": 0.0})
        circuit = circuits.get(name)
        health.append(
            {
                "deployment": name,
                "calls": agg["calls"],
                "error_rate": round(100 * agg["failures"] / agg["calls"], 1) if agg["calls"] else 0,
                "mean_ms": round(agg["ms_sum"] / agg["calls"], 1) if agg["calls"] else None,
                "circuit": circuit.state if circuit else "closed",
                "failures_in_a_row": circuit.consecutive_failures if circuit else 0,
            }
        )
    return render(
        request,
        "tenants/operator.html",
        {"tenants": tenants, "health": health, "queues": _queue_depths(), "since": since},
    )
