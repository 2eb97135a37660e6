"""The cache console: hit rate, tokens and money saved per feature, and purge per feature.

Everyone with a role reads; editors and admins purge (403 otherwise)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cache import selectors, services
from prompts.models import Feature
from tenants.decorators import EDIT_ROLES, READ_ROLES, tenant_view

PERIODS = {"1": 1, "7": 7, "30": 30}


def _days(request) -> int:
    return PERIODS.get(request.GET.get("days", ""), 30)


def _context(request, days: int) -> dict:
    rows = selectors.feature_figures(since=timezone.now() - timedelta(days=days))
    runs = sum(r["runs"] for r in rows)
    hits = sum(r["hits"] for r in rows)
    return {
        "rows": rows,
        "days": days,
        "periods": list(PERIODS.values()),
        "totals": {
            "runs": runs,
            "hits": hits,
            "hit_rate": round(100 * hits / runs, 1) if runs else None,
            "tokens_saved": sum(r["tokens_saved"] for r in rows),
            "money_saved": sum(r["money_saved"] for r in rows),
            "entries": sum(r["entries"] for r in rows),
        },
        "can_edit": request.role in EDIT_ROLES,
    }


@tenant_view(*READ_ROLES)
def overview(request):
    days = _days(request)
    template = "cache/_figures.html" if request.htmx else "cache/overview.html"
    return render(request, template, _context(request, days))


@tenant_view(*EDIT_ROLES)
@require_POST
def purge(request, feature_slug: str):
    feature = get_object_or_404(Feature, slug=feature_slug)
    removed = services.purge_feature(feature_slug=feature.slug)
    if request.htmx:
        context = _context(request, _days(request))
        context["notice"] = f"{removed} cached answer(s) of {feature.slug} purged."
        return render(request, "cache/_figures.html", context)
    messages.success(request, f"{removed} cached answer(s) of {feature.slug} purged.")
    return redirect("cache:overview", slug=request.tenant.slug)
