"""The usage console: cost, tokens, latency and rates over time (Chart.js, served locally), a
CSV export, and the quota page where admins edit limits (effective on the next request)."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from gateway.errors import SwitchboardError
from tenants.decorators import ADMIN_ROLES, READ_ROLES, tenant_view
from usage import selectors, services
from usage.forms import DateRangeForm, LimitForm
from usage.models import Limit


def _range(request):
    form = DateRangeForm(request.GET or None)
    today = timezone.now().date()
    start, end = today - timedelta(days=29), today
    if form.is_valid():
        start = form.cleaned_data["date_from"] or start
        end = form.cleaned_data["date_to"] or end
    if start > end:
        start, end = end, start
    return form, start, end


@tenant_view(*READ_ROLES)
def dashboard(request):
    form, start, end = _range(request)
    data = selectors.dashboard(start=start, end=end)
    return render(
        request, "usage/dashboard.html", {"form": form, "start": start, "end": end, **data}
    )


@tenant_view(*READ_ROLES)
def export_csv(request):
    _, start, end = _range(request)
    data = selectors.dashboard(start=start, end=end)
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{request.tenant.slug}-{start}-{end}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(["day", "feature", "requests", "tokens", "cost_usd"])
    for row in data["daily"]:
        writer.writerow(
            [
                row["day"].date().isoformat(),
                row["feature"],
                row["requests"],
                row["tokens"],
                format(row["cost"] or 0, "f"),
            ]
        )
    return response


@tenant_view(*READ_ROLES)
def quotas(request):
    form = LimitForm(request.POST or None)
    if request.method == "POST":
        if request.role not in ADMIN_ROLES:
            return render(request, "403.html", status=403)
        if form.is_valid():
            try:
                services.set_limit(tenant=request.tenant, **form.cleaned_data)
            except SwitchboardError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Limit saved: it applies from the next request.")
                return redirect("usage:quotas", slug=request.tenant.slug)
    context = {
        "rows": services.quota_overview(request.tenant),
        "form": form,
        "can_edit": request.role in ADMIN_ROLES,
    }
    return render(request, "usage/quotas.html", context, status=400 if form.errors else 200)


@tenant_view(*ADMIN_ROLES)
@require_POST
def quota_remove(request, limit_id: int):
    limit = get_object_or_404(Limit, pk=limit_id)
    services.remove_limit(tenant=request.tenant, limit=limit)
    messages.success(request, "Limit removed.")
    return redirect("usage:quotas", slug=request.tenant.slug)
